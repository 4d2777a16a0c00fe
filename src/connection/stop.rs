//! Stopping work that is in flight: the lock watchdog and the signal handler both end up here,
//! cancelling every registered work statement on the server (DESIGN.md §3, invariants 6 and 7).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use crate::connection::tls::LazyTls;
use postgres::{CancelToken, NoTls};
use signal_hook::consts::{SIGINT, SIGTERM};

use crate::error::{Error, Result};

/// Why work was stopped.
#[derive(Debug, Clone)]
pub enum StopReason {
    LockLost(String),
    Signal(i32),
}

impl StopReason {
    pub fn to_error(&self) -> Error {
        match self {
            StopReason::LockLost(why) => Error::LockLost(why.clone()),
            StopReason::Signal(signal) => Error::Interrupted {
                signal: *signal,
                name: if *signal == SIGINT {
                    "SIGINT"
                } else {
                    "SIGTERM"
                },
            },
        }
    }
}

#[derive(Default)]
struct Inner {
    tokens: Mutex<HashMap<u64, CancelToken>>,
    next_id: AtomicU64,
    reason: OnceLock<StopReason>,
    /// Set while the lock is held: a signal then unwinds gracefully instead of exiting at once.
    armed: AtomicBool,
    /// The connections' own TLS settings: a server that takes only TLS takes cancels only so.
    tls: OnceLock<LazyTls>,
}

/// Shared by the work connections, the lock watchdog and the signal thread.
#[derive(Clone, Default)]
pub struct Stop {
    inner: Arc<Inner>,
}

impl Stop {
    /// Registers a work connection's cancel token until the returned guard drops.
    pub fn register(&self, token: CancelToken) -> Result<Registration> {
        self.check()?;
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        self.lock_tokens().insert(id, token);
        Ok(Registration {
            stop: self.clone(),
            id,
        })
    }

    fn lock_tokens(&self) -> std::sync::MutexGuard<'_, HashMap<u64, CancelToken>> {
        self.inner.tokens.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The TLS connector the work connections were opened with, for cancel requests.
    pub fn use_tls(&self, tls: LazyTls) {
        let _ = self.inner.tls.set(tls);
    }

    /// Records the first reason and cancels every registered statement on the server.
    pub fn trigger(&self, reason: StopReason) {
        let _ = self.inner.reason.set(reason);
        let tokens: Vec<CancelToken> = self.lock_tokens().values().cloned().collect();
        for token in tokens {
            // A failed cancel means the backend is gone already, which is what we want.
            let _ = match self.inner.tls.get() {
                Some(tls) => token.cancel_query(tls.clone()),
                None => token.cancel_query(NoTls),
            };
        }
    }

    pub fn reason(&self) -> Option<&StopReason> {
        self.inner.reason.get()
    }

    /// Fails once work has been stopped, so that no new statement starts.
    pub fn check(&self) -> Result<()> {
        match self.reason() {
            Some(reason) => Err(reason.to_error()),
            None => Ok(()),
        }
    }

    /// The error to report: the stop's reason wins over the cancellation error it caused.
    pub fn explain(&self, error: Error) -> Error {
        match self.reason() {
            Some(reason) => reason.to_error(),
            None => error,
        }
    }

    pub fn arm(&self, armed: bool) {
        self.inner.armed.store(armed, Ordering::SeqCst);
    }

    /// SIGINT/SIGTERM: while the lock is held, cancel and unwind (the caller releases the lock and
    /// exits 130/143); otherwise, or on a second signal, exit at once: closing the sockets ends
    /// our backends and frees any session lock on the server.
    pub fn install_signal_handlers(&self, json_lines: bool) -> Result<()> {
        let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])
            .map_err(|e| Error::Internal(anyhow::anyhow!("cannot install signal handlers: {e}")))?;
        let stop = self.clone();
        std::thread::Builder::new()
            .name("signals".into())
            .spawn(move || {
                let say = |event: &str, message: &str| {
                    if json_lines {
                        eprintln!("{}", serde_json::json!({ "event": event, "level": "warn", "message": message }));
                    } else {
                        eprintln!("dbtool: {message}");
                    }
                };
                for signal in signals.forever() {
                    let first = stop.reason().is_none();
                    if first && stop.inner.armed.load(Ordering::SeqCst) {
                        say("interrupted", "interrupted: cancelling the statements in flight and releasing the lock (signal again to exit at once)");
                        stop.trigger(StopReason::Signal(signal));
                    } else {
                        say("interrupted", "interrupted: exiting now");
                        std::process::exit(128 + signal);
                    }
                }
            })
            .map_err(|e| Error::Internal(e.into()))?;
        Ok(())
    }
}

/// Unregisters a cancel token when its connection goes back to the pool.
pub struct Registration {
    stop: Stop,
    id: u64,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.stop.lock_tokens().remove(&self.id);
    }
}
