//! The gVNIC half of `irq test` and `msix`: bind and bring the queues up (as `txdhcp`
//! does), run the driver's test, print each routed vector and emit one `irq.test` frame
//! per vector.

use alloc::string::String;
use alloc::vec::Vec;

use drivers::gvnic::irq_test::{IrqReport, VectorResult};
use drivers::gvnic::{self, State};
use drivers::pci;
use drivers::platform::Bdf;
use evidence::{Body, IrqTest};

use super::{bound_nic, bring_up};
use crate::table::{CmdError, Ctx};

/// True when `bdf` is a gVNIC (1ae0:0042).
pub(crate) fn is_gvnic(ctx: &Ctx, bdf: Bdf) -> bool {
    pci::probe(ctx.hw.config, bdf)
        .is_some_and(|f| (f.vendor_id, f.device_id) == (gvnic::VENDOR_ID, gvnic::DEVICE_ID))
}

/// The bound gVNIC's bdf, if one is bound.
pub(crate) fn bound_bdf(ctx: &Ctx) -> Option<Bdf> {
    ctx.devices.gvnic.bound.as_ref().map(|b| b.bdf)
}

/// `irq test <gvnic>`.
pub(crate) fn irq_test(ctx: &mut Ctx, bdf: Bdf) -> Result<(), CmdError> {
    let bdf = bring_up(ctx, Some(bdf), None, State::QueuesUp)?;
    let (bound, hw) = bound_nic(ctx.devices, ctx.hw)?;
    let result = bound.nic.irq_test(hw.config, hw.clock, hw.dma, hw.irq);
    let report =
        result.map_err(|err| CmdError::new(err.code(), alloc::format!("gvnic {bdf}: {err}")))?;
    ctx.out.print(&irq_text(bdf, &report));
    for frame in irq_frames(bdf, &report) {
        ctx.out.frame(Body::IrqTest(frame));
    }
    Ok(())
}

fn vector_line(r: &VectorResult, vector: u8) -> String {
    if r.delivery.count == 0 {
        return alloc::format!(
            "  MSI-X entry {} ({}): no interrupt (trigger: {}); {} on other vectors\n",
            r.entry,
            r.role,
            r.trigger,
            r.delivery.other
        );
    }
    alloc::format!(
        "  MSI-X entry {} ({}): {} interrupt(s) on vector {vector:#04x}, {} µs after the \
         trigger ({}); {} on other vectors\n",
        r.entry,
        r.role,
        r.delivery.count,
        r.latency_us,
        r.trigger,
        r.delivery.other
    )
}

/// The human text of `irq test <gvnic>` (pure).
pub fn irq_text(bdf: Bdf, r: &IrqReport) -> String {
    let mut text = alloc::format!(
        "gvnic {bdf}: MSI-X entries routed one at a time to address {:#x} data {:#x} \
         (vector {:#04x} on the boot CPU)\n",
        r.message.address,
        r.message.data,
        r.vector
    );
    text.push_str(&vector_line(&r.rx, r.vector));
    text.push_str(&vector_line(&r.management, r.vector));
    text.push_str(
        "  every MSI-X entry, the MSI-X control word, the command register and the IRQ \
         doorbells restored\n",
    );
    text
}

/// One `irq.test` frame per routed vector (pure).
pub fn irq_frames(bdf: Bdf, r: &IrqReport) -> Vec<IrqTest> {
    [&r.rx, &r.management]
        .into_iter()
        .map(|v| IrqTest {
            bus: bdf.bus,
            device: bdf.device,
            function: bdf.function,
            entry: v.entry,
            vector: r.vector,
            address: r.message.address,
            data: r.message.data,
            count: v.delivery.count,
            latency_us: v.latency_us,
            other: v.delivery.other,
            restored: true,
            device_kind: String::from("gvnic"),
            role: String::from(v.role),
            trigger: String::from(v.trigger),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use drivers::platform::{Delivery, MsiMessage};

    #[test]
    fn text_and_frames_say_what_reached_the_cpu_and_what_did_not() {
        let report = IrqReport {
            vector: 0x41,
            message: MsiMessage {
                address: 0xfee0_0000,
                data: 0x41,
            },
            rx: VectorResult {
                role: "rx-block",
                entry: 1,
                trigger: "DHCP DISCOVER sent; the OFFER received",
                delivery: Delivery {
                    count: 1,
                    first_us: 900,
                    other: 0,
                },
                latency_us: 400,
                pending: Some(false),
            },
            management: VectorResult {
                role: "management",
                entry: 2,
                trigger: "none a driver can cause (DEVICE_STATUS changes): watched",
                delivery: Delivery::default(),
                latency_us: 0,
                pending: Some(false),
            },
        };
        let bdf = Bdf::new(0, 4, 0);
        let text = irq_text(bdf, &report);
        assert!(
            text.contains("MSI-X entry 1 (rx-block): 1 interrupt(s) on vector 0x41, 400 µs"),
            "{text}"
        );
        assert!(
            text.contains("MSI-X entry 2 (management): no interrupt"),
            "{text}"
        );
        let frames = irq_frames(bdf, &report);
        assert_eq!(frames.len(), 2);
        assert_eq!((frames[0].role.as_str(), frames[0].count), ("rx-block", 1));
        assert_eq!(
            (frames[1].role.as_str(), frames[1].count),
            ("management", 0)
        );
        assert!(frames.iter().all(|f| f.device_kind == "gvnic"));
    }
}
