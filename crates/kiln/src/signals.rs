//! Ctrl-C and SIGTERM: the first asks for a clean stop, the second for an immediate one.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use kiln_server::StopRequest;

/// Starts counting Ctrl-C / SIGTERM presses and returns what they ask for, to be polled.
/// `first` is printed (to stderr) on the first press.
pub fn stop_requests(first: &'static str) -> impl Fn() -> StopRequest + Send + Sync + 'static {
    let presses = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&presses);
    match signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
    ]) {
        Ok(mut signals) => {
            std::thread::spawn(move || {
                for _ in signals.forever() {
                    if counter.fetch_add(1, Ordering::SeqCst) == 0 {
                        eprintln!("\n{first}");
                    }
                }
            });
        }
        Err(e) => eprintln!("warning: cannot catch Ctrl-C: {e}"),
    }
    move || match presses.load(Ordering::SeqCst) {
        0 => StopRequest::None,
        1 => StopRequest::Graceful,
        _ => StopRequest::Force,
    }
}
