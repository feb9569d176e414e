//! MSI-X vectors as the eventfds QEMU hands over with SET_IRQS (index 2, VFIO_PCI_MSIX):
//! writing an 8-byte 1 to vector N's eventfd makes QEMU deliver vector N, through the MSI-X
//! table and PBA it emulates (masking is QEMU's business).
//!
//! QEMU installs a vector's eventfd when the guest first unmasks it (vfio's vector "use");
//! a vector the device raises before that is kept pending here and signalled when its
//! eventfd arrives, as a PBA bit would be.

use std::fs::File;
use std::io::Write;
use std::sync::{Arc, Mutex};

use crate::Interrupts;

#[derive(Default)]
struct Vectors {
    fds: Vec<Option<File>>,
    pending: Vec<bool>,
}

/// The per-vector eventfds, shared between the protocol loop (SET_IRQS) and the device (raise).
#[derive(Clone, Default)]
pub struct Eventfds(Arc<Mutex<Vectors>>);

impl Eventfds {
    pub fn new(vectors: u16) -> Self {
        let v = Vectors {
            fds: (0..vectors).map(|_| None).collect(),
            pending: vec![false; usize::from(vectors)],
        };
        Eventfds(Arc::new(Mutex::new(v)))
    }

    /// Vector `v` signals `fd` from now on (None: no eventfd, raises are kept pending).
    pub fn set(&self, v: u32, fd: Option<File>) {
        let mut g = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let Some(slot) = g.fds.get_mut(v as usize) else {
            return;
        };
        *slot = fd;
        if g.pending[v as usize] && signal(g.fds[v as usize].as_ref()) {
            g.pending[v as usize] = false;
        }
    }

    /// Every vector loses its eventfd (SET_IRQS with count 0, a disable).
    pub fn clear(&self) {
        let mut g = self.0.lock().unwrap_or_else(|e| e.into_inner());
        g.fds.iter_mut().for_each(|f| *f = None);
    }

    /// A device reset: nothing stays pending (the eventfds are QEMU's to keep or drop).
    pub fn reset(&self) {
        let mut g = self.0.lock().unwrap_or_else(|e| e.into_inner());
        g.pending.iter_mut().for_each(|p| *p = false);
    }
}

/// One 8-byte add of 1 to an eventfd; false without an fd or when the write fails.
fn signal(fd: Option<&File>) -> bool {
    let Some(mut f) = fd else {
        return false;
    };
    f.write_all(&1u64.to_ne_bytes()).is_ok()
}

impl Interrupts for Eventfds {
    fn raise(&mut self, vector: u16) -> bool {
        let mut g = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let v = usize::from(vector);
        if v >= g.fds.len() {
            return false;
        }
        if !signal(g.fds[v].as_ref()) {
            g.pending[v] = true;
        }
        true
    }
}
