//! REPORT_NIC_TIMESTAMP (0x11): the device writes its clock into a driver buffer (Linux
//! gve_adminq.h `struct gve_adminq_report_nic_ts` {nic_ts_report_len BE64,
//! nic_ts_report_addr BE64} and `struct gve_nic_ts_report` {nic_timestamp BE64 in
//! nanoseconds, four reserved BE64}: 40 bytes). Linux 6.16+ sends it at setup and every
//! 250 ms when NIC_TIMESTAMP is described (gve_clock.c / gve_ptp.c). Only the 2026 profile
//! describes that option; the 2024 device answers UNIMPLEMENTED (guess).

use crate::codes::{opcode, status};
use crate::record::ViolationKind;
use crate::{be64, GuestMemory, Gvnic};

/// Bytes of the report Linux asks for.
pub const NIC_TS_REPORT_BYTES: u64 = 40;

impl Gvnic {
    pub(crate) fn cmd_report_nic_timestamp(
        &mut self,
        cmd: &[u8; 64],
        mem: &dyn GuestMemory,
    ) -> u32 {
        if !self.generation().nic_timestamp {
            return self.unimplemented(opcode::REPORT_NIC_TIMESTAMP);
        }
        let (len, addr) = (be64(cmd, 8), be64(cmd, 16));
        if len < 8 {
            // Guess: a buffer that cannot hold the timestamp is refused.
            return self.refuse(
                ViolationKind::BadCommand,
                status::INVALID_ARGUMENT,
                format!("REPORT_NIC_TIMESTAMP nic_ts_report_len {len} < 8"),
            );
        }
        // The NIC clock is model time in ns (wall-clock time in the proxy): monotonic, which
        // is what the driver's PTP clock needs. The reserved words are written as 0.
        let mut report = vec![0u8; len.min(NIC_TS_REPORT_BYTES) as usize];
        report[..8].copy_from_slice(&self.now.saturating_mul(1000).to_be_bytes());
        if !self.dma_write(mem, addr, &report, "NIC timestamp report") {
            return status::INVALID_ARGUMENT;
        }
        status::PASSED
    }
}
