//! The connection cap: at most `--max-clients` connections are open at
//! once, so threads and memory stay bounded however many arrive.
//!
//! Holding a place costs a thread, so the places go to connections that
//! use them. One that is only waiting (for its first request head, or idle
//! between requests) can be reclaimed: when the server is full, the
//! connection that has waited longest is closed to make room for the
//! newcomer. A flood of connections that never send a byte (slowloris) can
//! then only push each other out, never a viewer whose stream is running.

use std::collections::VecDeque;
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// The places, shared by the accepting thread and the connection threads.
/// Every change happens under one lock, held for a few instructions.
pub struct Slots {
    max: usize,
    state: Mutex<State>,
}

struct State {
    /// Connections holding a place (reclaimed ones no longer count).
    open: usize,
    /// The connections that are only waiting, the longest-waiting first.
    waiting: VecDeque<Arc<Connection>>,
}

/// One admitted connection: its socket, shared by its thread (which reads
/// and writes it) and the registry (which may shut it down to reclaim it).
pub struct Connection {
    pub socket: TcpStream,
    /// Whether it is in `waiting` (changed only under the lock).
    waiting: AtomicBool,
    reclaimed: AtomicBool,
}

impl Slots {
    pub fn new(max: usize) -> Slots {
        let state = State {
            open: 0,
            waiting: VecDeque::new(),
        };
        Slots {
            max,
            state: Mutex::new(state),
        }
    }

    /// Gives a newcomer a place: a free one, or else the place of the
    /// connection that has waited longest, which is shut down (its thread
    /// sees the connection end and leaves). When every place is at work,
    /// the socket comes back: the server is full.
    pub fn admit(&self, socket: TcpStream) -> Result<Arc<Connection>, TcpStream> {
        let mut state = self.lock();
        if state.open < self.max {
            state.open += 1;
        } else if let Some(oldest) = state.waiting.pop_front() {
            oldest.waiting.store(false, Ordering::SeqCst);
            oldest.reclaimed.store(true, Ordering::SeqCst);
            let _ = oldest.socket.shutdown(Shutdown::Both);
        } else {
            return Err(socket);
        }
        let connection = Arc::new(Connection {
            socket,
            waiting: AtomicBool::new(false),
            reclaimed: AtomicBool::new(false),
        });
        // A newcomer has sent nothing yet: it starts out waiting.
        state.start_waiting(&connection);
        Ok(connection)
    }

    /// The connection waits for a request: its place may be reclaimed.
    pub fn waiting(&self, connection: &Arc<Connection>) {
        let mut state = self.lock();
        if !connection.reclaimed.load(Ordering::SeqCst) {
            state.start_waiting(connection);
        }
    }

    /// The connection has a request to answer: its place is its own until
    /// it waits again. `false` if it was reclaimed before it got here.
    pub fn working(&self, connection: &Connection) -> bool {
        let mut state = self.lock();
        state.stop_waiting(connection);
        !connection.reclaimed.load(Ordering::SeqCst)
    }

    /// The connection's thread is done: its place is free (unless it was
    /// reclaimed, in which case it already belongs to someone else).
    pub fn leave(&self, connection: &Connection) {
        let mut state = self.lock();
        state.stop_waiting(connection);
        if !connection.reclaimed.load(Ordering::SeqCst) {
            state.open -= 1;
        }
    }

    /// A poisoned lock only means a thread panicked while holding it; the
    /// counts it guards are updated in single steps, so they are still
    /// sound, and the server goes on.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl State {
    fn start_waiting(&mut self, connection: &Arc<Connection>) {
        if !connection.waiting.swap(true, Ordering::SeqCst) {
            self.waiting.push_back(Arc::clone(connection));
        }
    }

    /// Takes the connection out of `waiting`. A linear search, but the list
    /// is short except under a flood, and then it is the newest entries
    /// (the ones near the back) that start working.
    fn stop_waiting(&mut self, connection: &Connection) {
        if connection.waiting.swap(false, Ordering::SeqCst) {
            let at = self
                .waiting
                .iter()
                .rposition(|waiting| std::ptr::eq(&**waiting, connection));
            if let Some(at) = at {
                self.waiting.remove(at);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    /// A connected socket to hand to `admit` (the other end is dropped).
    fn socket(listener: &TcpListener) -> TcpStream {
        TcpStream::connect(listener.local_addr().expect("address")).expect("connect")
    }

    #[test]
    fn a_full_server_reclaims_the_longest_waiting_connection() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let slots = Slots::new(2);
        let first = slots.admit(socket(&listener)).expect("a free place");
        let second = slots.admit(socket(&listener)).expect("a free place");
        let third = slots
            .admit(socket(&listener))
            .expect("the first one's place");
        assert!(!slots.working(&first), "the first was reclaimed");
        assert!(slots.working(&second) && slots.working(&third));
        // Both working now: nothing to reclaim, the server is full.
        assert!(slots.admit(socket(&listener)).is_err());
        slots.leave(&first);
        assert!(
            slots.admit(socket(&listener)).is_err(),
            "a reclaimed place is not freed twice"
        );
        slots.leave(&second);
        assert!(
            slots.admit(socket(&listener)).is_ok(),
            "a place left is free again"
        );
    }

    #[test]
    fn waiting_again_makes_a_place_reclaimable_again() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let slots = Slots::new(1);
        let only = slots.admit(socket(&listener)).expect("a free place");
        assert!(slots.working(&only));
        assert!(slots.admit(socket(&listener)).is_err(), "working: kept");
        slots.waiting(&only);
        let newcomer = slots
            .admit(socket(&listener))
            .expect("the idle one's place");
        assert!(!slots.working(&only) && slots.working(&newcomer));
    }
}
