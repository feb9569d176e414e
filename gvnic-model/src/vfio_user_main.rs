//! `gvnic-model --vfio-user PATH`: listen, serve one QEMU, write the record when QEMU closes
//! the socket or on SIGTERM.
//!
//! SIGTERM: the protocol loop (rust-vmm's `Server::run`) blocks in accept or recvmsg in this
//! thread and owns the connection, so a watcher thread (SIGTERM blocked everywhere else and
//! taken with sigwait) ends it the two ways a loop can end: a connection of its own that
//! closes at once (ends a pending accept) and SIGUSR1 to this thread, repeated, whose handler does
//! nothing and is installed without SA_RESTART (recvmsg returns EINTR, the loop returns).

use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;

use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result};

/// SIGTERM arrived: the loop's EINTR is the requested stop, not an error.
static STOPPING: AtomicBool = AtomicBool::new(false);

pub fn serve(path: &Path, dev: gvnic_model::Gvnic, record: Option<&Path>) -> Result<()> {
    let _ = std::fs::remove_file(path);
    let listener =
        UnixListener::bind(path).with_context(|| format!("binding {}", path.display()))?;
    stop_on_sigterm(path)?;
    let (dev, served) = gvnic_model::vfio_user::serve(listener, dev);
    let _ = std::fs::remove_file(path);
    if let Some(out) = record {
        gvnic_model::record_file::write_record(&dev, out)
            .with_context(|| format!("writing the record to {}", out.display()))?;
    }
    if STOPPING.load(Ordering::SeqCst) {
        return Ok(());
    }
    served
}

extern "C" fn ignore(_: libc::c_int) {}

fn stop_on_sigterm(path: &Path) -> Result<()> {
    // SAFETY: local sigset_t/sigaction values initialised before use; the handler does
    // nothing (async-signal-safe); blocking SIGTERM here is inherited by the threads this
    // thread spawns later (the model's clock, the watcher), so only sigwait sees it.
    let (set, me) = unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = ignore as *const () as usize;
        libc::sigaction(libc::SIGUSR1, &sa, std::ptr::null_mut());
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        (set, libc::pthread_self())
    };
    let path = path.to_path_buf();
    std::thread::Builder::new()
        .name("sigterm".into())
        .spawn(move || {
            let mut sig = 0;
            // SAFETY: sigwait reads the initialised set and writes into a local.
            while unsafe { libc::sigwait(&set, &mut sig) } == 0 {
                if sig == libc::SIGTERM {
                    eprintln!("gvnic-model: SIGTERM, stopping");
                    STOPPING.store(true, Ordering::SeqCst);
                    let _ = UnixStream::connect(&path);
                    // Repeated: a signal that lands between two messages interrupts nothing.
                    loop {
                        // SAFETY: `me` is the main (serving) thread; the process ends with it.
                        unsafe { libc::pthread_kill(me, libc::SIGUSR1) };
                        std::thread::sleep(std::time::Duration::from_millis(100));
                    }
                }
            }
        })
        .context("starting the SIGTERM watcher")?;
    Ok(())
}
