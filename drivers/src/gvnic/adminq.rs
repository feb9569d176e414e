//! The admin queue: one 4 KiB page of 64 command slots of 64 bytes (facts §2.3, §3).
//!
//! A command is copied into slot `count % 64`, the free-running count is written to the
//! ADMINQ_DOORBELL, and the driver polls ADMINQ_EVENT_COUNTER until it catches up. The
//! device then leaves a status word in the command (cmd+4); only PASSED (1) is success.
//! We run one command at a time, which is all a polling monitor needs.

use zerocopy::byteorder::big_endian::{U16, U32, U64};
use zerocopy::{Immutable, IntoBytes, KnownLayout};

use crate::dma::{DmaBuf, DmaPool, PAGE_SIZE};
use crate::platform::{wait_for, wait_for_recovery, Clock, WaitError};

use super::regs::{AqMode, DeviceStatus, DriverStatus, Registers};
use super::GvnicError;

/// The admin queue is one page: 64 slots of 64 bytes. iPXE uses exactly this "to minimise
/// variability", and it is what revision-0 devices assume (the PFN implies 4 KiB pages).
pub const AQ_BYTES: usize = PAGE_SIZE;
pub const AQ_ENTRY_BYTES: usize = 64;
pub const AQ_SLOTS: u32 = (AQ_BYTES / AQ_ENTRY_BYTES) as u32;

/// Per-command deadline: iPXE's 500 ms, which it found enough on GCE.
pub const AQ_TIMEOUT_US: u64 = 500_000;

/// Admin opcodes (cmd+0, BE32).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum Opcode {
    DescribeDevice = 0x01,
    ConfigureDeviceResources = 0x02,
    RegisterPageList = 0x03,
    UnregisterPageList = 0x04,
    CreateTxQueue = 0x05,
    CreateRxQueue = 0x06,
    DestroyTxQueue = 0x07,
    DestroyRxQueue = 0x08,
    DeconfigureDeviceResources = 0x09,
}

impl Opcode {
    pub fn name(self) -> &'static str {
        match self {
            Opcode::DescribeDevice => "DESCRIBE_DEVICE",
            Opcode::ConfigureDeviceResources => "CONFIGURE_DEVICE_RESOURCES",
            Opcode::RegisterPageList => "REGISTER_PAGE_LIST",
            Opcode::UnregisterPageList => "UNREGISTER_PAGE_LIST",
            Opcode::CreateTxQueue => "CREATE_TX_QUEUE",
            Opcode::CreateRxQueue => "CREATE_RX_QUEUE",
            Opcode::DestroyTxQueue => "DESTROY_TX_QUEUE",
            Opcode::DestroyRxQueue => "DESTROY_RX_QUEUE",
            Opcode::DeconfigureDeviceResources => "DECONFIGURE_DEVICE_RESOURCES",
        }
    }
}

/// The status word a successful command carries.
pub const STATUS_PASSED: u32 = 0x0000_0001;

/// The name of an admin status code (facts §2.3, the table after the opcodes).
pub fn status_name(status: u32) -> &'static str {
    match status {
        0x0000_0000 => "UNSET (not executed)",
        STATUS_PASSED => "PASSED",
        0xFFFF_FFF0 => "ABORTED",
        0xFFFF_FFF1 => "ALREADY_EXISTS",
        0xFFFF_FFF2 => "CANCELLED",
        0xFFFF_FFF3 => "DATALOSS",
        0xFFFF_FFF4 => "DEADLINE_EXCEEDED",
        0xFFFF_FFF5 => "FAILED_PRECONDITION",
        0xFFFF_FFF6 => "INTERNAL_ERROR",
        0xFFFF_FFF7 => "INVALID_ARGUMENT",
        0xFFFF_FFF8 => "NOT_FOUND",
        0xFFFF_FFF9 => "OUT_OF_RANGE",
        0xFFFF_FFFA => "PERMISSION_DENIED",
        0xFFFF_FFFB => "UNAUTHENTICATED",
        0xFFFF_FFFC => "RESOURCE_EXHAUSTED",
        0xFFFF_FFFD => "UNAVAILABLE",
        0xFFFF_FFFE => "UNIMPLEMENTED",
        0xFFFF_FFFF => "UNKNOWN_ERROR",
        _ => "unknown status",
    }
}

/// The 8-byte header of every admin command.
#[derive(IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
struct Header {
    opcode: U32,
    /// Written 0 by the driver, filled in by the device.
    status: U32,
}

/// DESCRIBE_DEVICE payload (facts §3.1).
#[derive(IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct DescribeDevice {
    pub descriptor_addr: U64,
    /// Always 1.
    pub descriptor_version: U32,
    pub available_length: U32,
}

/// CONFIGURE_DEVICE_RESOURCES payload (facts §3.2).
#[derive(IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct ConfigureDeviceResources {
    pub counter_array: U64,
    pub irq_db_addr: U64,
    pub num_counters: U32,
    pub num_irq_dbs: U32,
    pub irq_db_stride: U32,
    pub ntfy_blk_msix_base_idx: U32,
    pub queue_format: u8,
    pub padding: [u8; 7],
}

/// REGISTER_PAGE_LIST payload (facts §3.3).
#[derive(IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct RegisterPageList {
    pub page_list_id: U32,
    pub num_pages: U32,
    pub page_address_list_addr: U64,
    pub page_size: U64,
}

/// UNREGISTER_PAGE_LIST, DESTROY_TX_QUEUE and DESTROY_RX_QUEUE all carry one BE32 id.
#[derive(IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct ById {
    pub id: U32,
}

/// CREATE_TX_QUEUE payload (facts §3.4).
#[derive(IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct CreateTxQueue {
    pub queue_id: U32,
    pub reserved: U32,
    pub queue_resources_addr: U64,
    pub tx_ring_addr: U64,
    pub queue_page_list_id: U32,
    pub ntfy_id: U32,
    /// DQO only; 0 for GQI.
    pub tx_comp_ring_addr: U64,
    pub tx_ring_size: U16,
    pub tx_comp_ring_size: U16,
    pub padding: U32,
}

/// CREATE_RX_QUEUE payload (facts §3.5; Linux's names: the desc ring is the one the device
/// writes, the data ring the one the driver writes).
#[derive(IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct CreateRxQueue {
    pub queue_id: U32,
    /// GQI: equal to queue_id.
    pub index: U32,
    pub reserved: U32,
    pub ntfy_id: U32,
    pub queue_resources_addr: U64,
    pub rx_desc_ring_addr: U64,
    pub rx_data_ring_addr: U64,
    pub queue_page_list_id: U32,
    pub rx_ring_size: U16,
    pub packet_buffer_size: U16,
    pub rx_buff_ring_size: U16,
    pub enable_rsc: u8,
    pub padding1: u8,
    pub header_buffer_size: U16,
    pub padding2: U16,
}

/// DECONFIGURE_DEVICE_RESOURCES has no payload.
#[derive(IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct NoPayload {}

// Every payload must fit the 56 bytes after the header; the offsets in the facts follow.
const _: () = assert!(core::mem::size_of::<DescribeDevice>() == 16);
const _: () = assert!(core::mem::size_of::<ConfigureDeviceResources>() == 40);
const _: () = assert!(core::mem::size_of::<RegisterPageList>() == 24);
const _: () = assert!(core::mem::size_of::<CreateTxQueue>() == 48);
const _: () = assert!(core::mem::size_of::<CreateRxQueue>() == 56);

/// Builds the 64-byte command: header with status 0, payload, every unused byte zero.
pub fn encode<P: IntoBytes + Immutable>(opcode: Opcode, payload: &P) -> [u8; AQ_ENTRY_BYTES] {
    let mut entry = [0u8; AQ_ENTRY_BYTES];
    let header = Header {
        opcode: U32::new(opcode as u32),
        status: U32::new(0),
    };
    entry[..8].copy_from_slice(header.as_bytes());
    let body = payload.as_bytes();
    entry[8..8 + body.len()].copy_from_slice(body);
    entry
}

/// The admin queue page and the driver's free-running command count.
pub struct AdminQueue {
    pub buf: DmaBuf,
    phys: u64,
    /// Commands submitted since the queue was handed to the device (never wrapped at 64:
    /// the doorbell and event counter are free-running; tamago broke by wrapping).
    prod: u32,
}

impl AdminQueue {
    /// Allocates the queue page (zeroed) and hands it to the device.
    pub fn enable(
        regs: &Registers,
        dma: &mut DmaPool,
        owner: &str,
        mode: AqMode,
    ) -> Result<AdminQueue, GvnicError> {
        let buf = dma.alloc(owner, "gvnic admin queue", AQ_BYTES)?;
        let phys = dma.device_addr(&buf, 0)?;
        // The register holds phys / 4096 in 32 bits: the queue must sit below 16 TiB (the
        // pool is below 4 GiB, so this only guards a broken pool).
        let pfn =
            u32::try_from(phys / PAGE_SIZE as u64).map_err(|_| GvnicError::BadDeviceValue {
                what: "admin queue address for the PFN register",
                value: phys,
            })?;
        // Every revision gets the PFN, as iPXE writes it on every device (facts §2.1): on
        // revision 1 it is what tells us, later, that the device let go of the queue
        // without relying on DEVICE_IS_RESET (which nothing says RUN clears).
        regs.set_aq_pfn(pfn);
        if mode == AqMode::BaseLength {
            regs.set_aq_base_and_length(phys, AQ_BYTES as u16);
            // RUN last: the device starts reading the queue once it sees it.
            regs.set_driver_status(DriverStatus::RUN);
        }
        Ok(AdminQueue { buf, phys, prod: 0 })
    }

    pub fn phys(&self) -> u64 {
        self.phys
    }

    /// Runs one command to completion. Errors: the device was reset under us (PFN reads 0
    /// or DEVICE_IS_RESET / RESET_REQUESTED while we wait), no completion within 500 ms, or
    /// a status other than PASSED.
    pub fn execute(
        &mut self,
        regs: &Registers,
        clock: &dyn Clock,
        dma: &mut DmaPool,
        opcode: Opcode,
        command: &[u8; AQ_ENTRY_BYTES],
    ) -> Result<(), GvnicError> {
        self.run(regs, clock, dma, opcode, command, false)
    }

    /// As [`Self::execute`], for teardown's commands (destroy, unregister, deconfigure): a
    /// recovery wait, which a Ctrl-C does not cut short (it keeps its deadline).
    pub fn execute_recovery(
        &mut self,
        regs: &Registers,
        clock: &dyn Clock,
        dma: &mut DmaPool,
        opcode: Opcode,
        command: &[u8; AQ_ENTRY_BYTES],
    ) -> Result<(), GvnicError> {
        self.run(regs, clock, dma, opcode, command, true)
    }

    fn run(
        &mut self,
        regs: &Registers,
        clock: &dyn Clock,
        dma: &mut DmaPool,
        opcode: Opcode,
        command: &[u8; AQ_ENTRY_BYTES],
        recovery: bool,
    ) -> Result<(), GvnicError> {
        // Linux checks the queue is idle first; a counter that moved on its own (usually
        // back to 0) means the device was reset and forgot our queue.
        let executed = regs.aq_event_counter();
        if executed != self.prod || self.device_was_reset(regs) {
            return Err(GvnicError::DeviceReset {
                during: opcode.name(),
            });
        }
        let slot = (self.prod % AQ_SLOTS) as usize * AQ_ENTRY_BYTES;
        dma.write(&self.buf, slot, command)?;
        self.prod = self.prod.wrapping_add(1);
        let wanted = self.prod;
        regs.ring_aq_doorbell(wanted);

        let done = || {
            if regs.aq_event_counter() == wanted {
                Some(Ok(()))
            } else if self.device_was_reset(regs) {
                Some(Err(()))
            } else {
                None
            }
        };
        let outcome = if recovery {
            wait_for_recovery(clock, AQ_TIMEOUT_US, done)
        } else {
            wait_for(clock, AQ_TIMEOUT_US, done)
        };
        match outcome {
            Ok(Ok(())) => {}
            Ok(Err(())) => {
                return Err(GvnicError::DeviceReset {
                    during: opcode.name(),
                })
            }
            Err(WaitError::TimedOut) => return Err(GvnicError::AdminTimeout { opcode }),
            Err(WaitError::Interrupted) => return Err(GvnicError::Interrupted),
        }
        let status = u32::from_be(dma.read_u32(&self.buf, slot + 4)?);
        if status != STATUS_PASSED {
            return Err(GvnicError::AdminStatus { opcode, status });
        }
        Ok(())
    }

    /// The device let go of this queue: PFN reads 0 (iPXE's ECONNRESET check on every
    /// poll), on every revision ([`Registers::let_go_of_aq`]).
    pub fn reads_reset(&self, regs: &Registers) -> bool {
        regs.let_go_of_aq()
    }

    /// A reset under us: the device let go of the queue, or asks to be reset (Linux's
    /// DEVICE_STATUS bit 1).
    pub fn device_was_reset(&self, regs: &Registers) -> bool {
        self.reads_reset(regs) || regs.device_status().contains(DeviceStatus::RESET_REQUESTED)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_rx_queue_layout_matches_the_facts() {
        let cmd = CreateRxQueue {
            queue_id: U32::new(0),
            index: U32::new(0),
            reserved: U32::new(0),
            ntfy_id: U32::new(1),
            queue_resources_addr: U64::new(0x1111),
            rx_desc_ring_addr: U64::new(0x2222),
            rx_data_ring_addr: U64::new(0x3333),
            queue_page_list_id: U32::new(0x44),
            rx_ring_size: U16::new(0x400),
            packet_buffer_size: U16::new(2048),
            rx_buff_ring_size: U16::new(0),
            enable_rsc: 0,
            padding1: 0,
            header_buffer_size: U16::new(0),
            padding2: U16::new(0),
        };
        let entry = encode(Opcode::CreateRxQueue, &cmd);
        assert_eq!(&entry[0..4], &[0, 0, 0, 6]);
        assert_eq!(&entry[20..24], &[0, 0, 0, 1]); // ntfy_id at cmd+20
        assert_eq!(&entry[24..32], &0x1111u64.to_be_bytes());
        assert_eq!(&entry[32..40], &0x2222u64.to_be_bytes());
        assert_eq!(&entry[40..48], &0x3333u64.to_be_bytes());
        assert_eq!(&entry[48..52], &0x44u32.to_be_bytes());
        assert_eq!(&entry[52..54], &0x400u16.to_be_bytes());
        assert_eq!(&entry[54..56], &2048u16.to_be_bytes());
    }

    #[test]
    fn create_tx_queue_layout_matches_the_facts() {
        let cmd = CreateTxQueue {
            queue_id: U32::new(0),
            reserved: U32::new(0),
            queue_resources_addr: U64::new(0xa000),
            tx_ring_addr: U64::new(0xb000),
            queue_page_list_id: U32::new(7),
            ntfy_id: U32::new(0),
            tx_comp_ring_addr: U64::new(0),
            tx_ring_size: U16::new(256),
            tx_comp_ring_size: U16::new(0),
            padding: U32::new(0),
        };
        let entry = encode(Opcode::CreateTxQueue, &cmd);
        assert_eq!(&entry[16..24], &0xa000u64.to_be_bytes());
        assert_eq!(&entry[24..32], &0xb000u64.to_be_bytes());
        assert_eq!(&entry[32..36], &7u32.to_be_bytes());
        assert_eq!(&entry[48..50], &256u16.to_be_bytes());
    }

    #[test]
    fn configure_layout_matches_the_facts() {
        let cmd = ConfigureDeviceResources {
            counter_array: U64::new(0x1000),
            irq_db_addr: U64::new(0x2000),
            num_counters: U32::new(32),
            num_irq_dbs: U32::new(2),
            irq_db_stride: U32::new(64),
            ntfy_blk_msix_base_idx: U32::new(0),
            queue_format: 2,
            padding: [0; 7],
        };
        let entry = encode(Opcode::ConfigureDeviceResources, &cmd);
        assert_eq!(&entry[24..28], &32u32.to_be_bytes());
        assert_eq!(&entry[28..32], &2u32.to_be_bytes());
        assert_eq!(&entry[32..36], &64u32.to_be_bytes());
        assert_eq!(entry[40], 2);
        assert_eq!(status_name(0xFFFF_FFF5), "FAILED_PRECONDITION");
    }
}
