//! [`Nic`] for the gVNIC driver: the adapter calls only the driver's public data path
//! (`Gvnic::transmit`, `Gvnic::receive`), so it works for every queue format the driver
//! brings up.

use alloc::string::ToString;
use alloc::vec::Vec;

use crate::dma::DmaPool;
use crate::gvnic::{Gvnic, GvnicError};
use crate::platform::{wait_for, Clock, Interrupts, WaitError};

/// How long a frame waits behind an earlier TX whose completion wait was cut short (Ctrl-C
/// during a previous command): the device completes it moments later (policy).
const TX_BUSY_GRACE_US: u64 = 100_000;

use super::nic::{Nic, NicError};

/// A gVNIC with its queues up, borrowed with the clock and pool its data path needs.
pub struct GvnicNic<'a> {
    nic: &'a mut Gvnic,
    clock: &'a dyn Clock,
    dma: &'a mut DmaPool,
    mac: [u8; 6],
    mtu: usize,
    /// `--irq`: completions waited for by interrupt (the NIC's session must be live).
    irq: Option<&'a dyn Interrupts>,
}

impl<'a> GvnicNic<'a> {
    /// None when the NIC was never described (no MAC or MTU known yet).
    pub fn new(nic: &'a mut Gvnic, clock: &'a dyn Clock, dma: &'a mut DmaPool) -> Option<Self> {
        // The MTU follows the lease when the device's JUMBO_FRAMES allows it.
        let mac = nic.info()?.descriptor.mac;
        let mtu = usize::from(nic.mtu_plan()?.mtu);
        Some(GvnicNic {
            nic,
            clock,
            dma,
            mac,
            mtu,
            irq: None,
        })
    }

    /// Waits by interrupt while the NIC's `--irq` session is live ([`Gvnic::begin_irq_waits`]).
    pub fn with_irq(mut self, irq: Option<&'a dyn Interrupts>) -> Self {
        self.irq = irq;
        self
    }
}

fn nic_error(err: GvnicError) -> NicError {
    NicError {
        code: err.code(),
        message: err.to_string(),
    }
}

impl Nic for GvnicNic<'_> {
    fn mac(&self) -> [u8; 6] {
        self.mac
    }

    fn mtu(&self) -> usize {
        self.mtu
    }

    fn transmit(&mut self, frame: &[u8]) -> Result<(), NicError> {
        let (nic, clock, dma, irq) = (&mut *self.nic, self.clock, &mut *self.dma, self.irq);
        // The driver refuses to post while an earlier descriptor is outstanding; that one
        // completes soon, so retry within the grace (a user wait: Ctrl-C ends it).
        let mut busy = None;
        let sent = wait_for(clock, TX_BUSY_GRACE_US, || {
            match nic.transmit_with(clock, dma, frame, irq) {
                Err(err @ GvnicError::TxBusy { .. }) => {
                    busy = Some(err);
                    None
                }
                other => Some(other),
            }
        });
        match sent {
            Ok(result) => result.map(|_| ()).map_err(nic_error),
            Err(WaitError::Interrupted) => Err(nic_error(GvnicError::Interrupted)),
            Err(WaitError::TimedOut) => Err(nic_error(
                busy.unwrap_or(GvnicError::TxBusy { outstanding: 1 }),
            )),
        }
    }

    fn receive(&mut self, timeout_us: u64) -> Result<Option<Vec<u8>>, NicError> {
        match self
            .nic
            .receive_with(self.clock, self.dma, timeout_us, self.irq)
        {
            Ok(frame) => Ok(Some(frame)),
            Err(GvnicError::RxTimeout) => Ok(None),
            Err(err) => Err(nic_error(err)),
        }
    }
}
