//! Device resources: the event-counter array and notification blocks handed over by
//! CONFIGURE_DEVICE_RESOURCES (facts §3.2), and the 64-byte queue-resources block the
//! device fills on CREATE_*_QUEUE (facts §4.4).

use zerocopy::byteorder::big_endian::U32;
use zerocopy::{FromBytes, Immutable, KnownLayout};

use crate::dma::{DmaBuf, DmaPool};

use super::regs::Doorbells;
use super::GvnicError;

/// Counter array and notification blocks, handed over by CONFIGURE_DEVICE_RESOURCES.
pub struct Resources {
    pub counters: DmaBuf,
    pub num_counters: u16,
    pub irq_dbs: DmaBuf,
    /// The IRQ doorbell index of each notification block, read after CONFIGURE.
    pub irq_doorbells: alloc::vec::Vec<u32>,
}

/// The 64-byte block the device fills on CREATE_*_QUEUE (facts §4.4, BE).
#[derive(FromBytes, Immutable, KnownLayout)]
#[repr(C)]
struct RawQueueResources {
    db_index: U32,
    counter_index: U32,
    reserved: [u8; 56],
}
const _: () = assert!(core::mem::size_of::<RawQueueResources>() == 64);

/// The doorbell and counter indexes the device chose for a queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueIndexes {
    pub db_index: u32,
    pub counter_index: u32,
}

/// Reads and checks the indexes the device chose before we ever write through them.
/// `counters` bounds the counter index of GQI queues; DQO queues complete through their
/// completion rings and their counter index is not used (None: not checked).
pub fn read_queue_resources(
    dma: &DmaPool,
    resources: &DmaBuf,
    doorbells: &Doorbells,
    counters: Option<u16>,
) -> Result<QueueIndexes, GvnicError> {
    let mut raw = [0u8; 64];
    dma.read(resources, 0, &mut raw)?;
    let (res, _) = RawQueueResources::read_from_prefix(&raw)
        .map_err(|_| GvnicError::BadDescriptor(alloc::string::String::from("queue resources")))?;
    let db_index = doorbells.check(res.db_index.get(), "queue doorbell index")?;
    let counter_index = res.counter_index.get();
    if counters.is_some_and(|n| counter_index >= u32::from(n)) {
        return Err(GvnicError::BadDeviceValue {
            what: "event counter index",
            value: u64::from(counter_index),
        });
    }
    Ok(QueueIndexes {
        db_index,
        counter_index,
    })
}
