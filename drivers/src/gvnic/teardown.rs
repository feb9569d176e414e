//! Teardown: undo exactly what bring-up did, in the reference's order (facts §0.5), and free
//! the NIC's DMA only once the device confirmed its reset (else quarantine it).

use alloc::string::String;
use alloc::vec::Vec;

use zerocopy::byteorder::big_endian::U32;

use crate::dma::DmaPool;
use crate::platform::{Clock, ConfigSpace};

use super::adminq::{self, ById, NoPayload, Opcode};
use super::device::{Gvnic, State, TeardownStep};
use super::notify::DummyMsix;
use super::ring::Step;
use super::GvnicError;

impl Gvnic {
    /// The admin commands teardown owes, in the reference's order: DESTROY_RX_QUEUE,
    /// DESTROY_TX_QUEUE, UNREGISTER_PAGE_LIST (RX, then TX), DECONFIGURE (facts §0.5).
    fn teardown_steps(&self) -> Vec<Step> {
        let tx = self
            .tx
            .as_ref()
            .map(|t| t.teardown_steps())
            .unwrap_or_default();
        let rx = self
            .rx
            .as_ref()
            .map(|r| r.teardown_steps())
            .unwrap_or_default();
        let mut steps: Vec<Step> = [rx.destroy, tx.destroy, rx.unregister, tx.unregister]
            .into_iter()
            .flatten()
            .collect();
        if self.state >= State::Configured && self.state != (State::TornDown { quarantined: true })
        {
            steps.push(Step {
                name: "deconfigure",
                opcode: Opcode::DeconfigureDeviceResources,
                id: 0,
            });
        }
        steps
    }

    /// Undoes everything: MSI-X vectors masked first (iPXE masks a vector before
    /// destroying its queue), the admin steps of [`Self::teardown_steps`], MSI-X disabled,
    /// then the reset, whose confirmed completion is what allows freeing the DMA. Each step
    /// is reported. An admin step that fails does not stop the teardown: the reset releases
    /// everything anyway. Returns the first failure, if any.
    pub fn teardown(
        &mut self,
        config: &dyn ConfigSpace,
        clock: &dyn Clock,
        dma: &mut DmaPool,
        report: &mut dyn FnMut(TeardownStep),
    ) -> Result<(), GvnicError> {
        let mut first_error: Option<GvnicError> = None;
        // Once the admin queue stops answering (timeout, reset), further commands are
        // pointless: skip to the reset.
        let mut aq_alive = self.aq.is_some();
        let steps = self.teardown_steps();
        let live_buffers = |dma: &DmaPool, owner: &str| {
            dma.ledger()
                .iter()
                .filter(|a| a.owner == owner && a.quarantine.is_none())
                .count()
        };
        let msix_live = self.msix.as_ref().is_some_and(DummyMsix::live);
        let nothing_bound = self.aq.is_none()
            && live_buffers(dma, &self.owner) == 0
            && self.state != (State::TornDown { quarantined: true })
            && !msix_live;
        if nothing_bound && steps.is_empty() {
            return Ok(());
        }
        if msix_live {
            if let Some(msix) = &self.msix {
                msix.mask_all();
            }
            report(TeardownStep {
                step: "msix-mask",
                ok: true,
                detail: String::from("every MSI-X vector masked"),
            });
        }
        // The device reset itself (host reset, live migration) since our last command: it
        // holds none of our memory, so no admin command is owed. Not a failure: say so.
        let mut reset_itself = self.aq.is_some() && self.holds_nothing();
        if reset_itself {
            aq_alive = false;
            report(TeardownStep {
                step: "device-reset",
                ok: true,
                detail: String::from(
                    "the device reset itself earlier (ADMINQ_PFN reads 0): it holds none of our \
                     memory",
                ),
            });
        }
        for Step { name, opcode, id } in steps {
            if !aq_alive {
                report(if reset_itself {
                    TeardownStep {
                        step: name,
                        ok: true,
                        detail: String::from("not needed: the device reset itself and let go"),
                    }
                } else {
                    TeardownStep {
                        step: name,
                        ok: false,
                        detail: String::from(
                            "skipped: the admin queue is not answering; the reset releases it",
                        ),
                    }
                });
                continue;
            }
            let command = match opcode {
                Opcode::DeconfigureDeviceResources => adminq::encode(opcode, &NoPayload {}),
                _ => adminq::encode(opcode, &ById { id: U32::new(id) }),
            };
            let result = match self.aq.as_mut() {
                Some(aq) => aq.execute_recovery(&self.regs, clock, dma, opcode, &command),
                None => Err(GvnicError::WrongState {
                    wanted: "with its admin queue up",
                    state: self.state.name(),
                }),
            };
            match result {
                Ok(()) => report(TeardownStep {
                    step: name,
                    ok: true,
                    detail: alloc::format!("{} passed", opcode.name()),
                }),
                Err(GvnicError::DeviceReset { during }) => {
                    // The device reset under this very command (or asks to be reset): the
                    // reset below releases everything; nothing failed that matters.
                    aq_alive = false;
                    reset_itself = self.holds_nothing();
                    report(TeardownStep {
                        step: name,
                        ok: true,
                        detail: if reset_itself {
                            alloc::format!(
                                "not needed: the device reset itself during {during} and let go"
                            )
                        } else {
                            alloc::format!(
                                "not run: the device asked to be reset during {during}; the \
                                 reset releases it"
                            )
                        },
                    });
                }
                Err(err) => {
                    if !matches!(err, GvnicError::AdminStatus { .. }) {
                        aq_alive = false;
                    }
                    report(TeardownStep {
                        step: name,
                        ok: false,
                        detail: alloc::format!("{err}"),
                    });
                    first_error.get_or_insert(err);
                }
            }
        }
        if let Some(detail) = self.quiesce_msix(Some(config)) {
            let ok = !detail.contains("STILL");
            report(TeardownStep {
                step: "msix-disable",
                ok,
                detail,
            });
        }
        let buffers = live_buffers(dma, &self.owner);
        match self.reset_and_release(Some(config), clock, dma) {
            Ok(already) => {
                report(TeardownStep {
                    step: "reset",
                    ok: true,
                    detail: String::from(if already && reset_itself {
                        "the device reset itself: not reset again (GCE would schedule another)"
                    } else if already {
                        "device already reads reset (not reset again: GCE would schedule another)"
                    } else {
                        "device confirmed the reset and released the admin queue"
                    }),
                });
                report(TeardownStep {
                    step: "release-dma",
                    ok: true,
                    detail: alloc::format!("{buffers} DMA buffer(s) scrubbed and freed"),
                });
                // An earlier quarantine freed by this reset stays in `released` for the
                // caller to report (`take_released_quarantine`).
                self.state = State::TornDown { quarantined: false };
            }
            Err(err) => {
                report(TeardownStep {
                    step: "reset",
                    ok: false,
                    detail: alloc::format!("{err}"),
                });
                report(TeardownStep {
                    step: "release-dma",
                    ok: false,
                    detail: alloc::format!(
                        "{buffers} DMA buffer(s) quarantined, never reused this boot"
                    ),
                });
                // The quarantine is the lasting consequence; it outranks earlier failures.
                first_error = Some(err);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}
