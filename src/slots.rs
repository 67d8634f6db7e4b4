//! Lesson 5: protection. At most `--max-connections` connections hold a
//! slot at once, so threads and memory stay bounded however many arrive.
//! A slot costs a thread, so it goes to a connection that uses it: when
//! the server is full, the connection that has waited longest for its
//! head is closed to make room. A flood of connections that never send a
//! byte (slowloris) can then only push each other out, never a viewer
//! whose stream is running. A newcomer that finds every slot at work
//! still gets an answer, briefly, on one of a few extra threads.
//!
//! Specs: RFC 9110 section 15.6.4 (`503 Service Unavailable`) and 10.2.3
//! (`Retry-After`); WHATWG HTML 9.2.3 (an `EventSource` reconnects after
//! its stream ends, but gives up for good on an error status).

use std::collections::VecDeque;
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::http::{self, Site};

/// When every slot is at work, up to this many extra threads read a
/// newcomer's request and answer "come back later"; past that, newcomers
/// are closed at once, which an `EventSource` also takes as "retry later".
pub const TURN_AWAY_THREADS: usize = 8;

/// How long a newcomer to a full server has to send its head before it
/// gets `408`: a turn-away thread is one of a few, so it waits briefly.
pub const TURN_AWAY_HEAD_TIMEOUT: Duration = Duration::from_secs(1);

/// The slots, shared by the accepting thread and the connection threads.
pub struct Slots {
    max: usize,
    /// Every change happens under this lock, held for a few instructions.
    state: Mutex<State>,
    /// Threads busy turning newcomers away, at most `TURN_AWAY_THREADS`.
    turning_away: AtomicUsize,
}

struct State {
    /// Connections holding a slot (reclaimed ones no longer count).
    open: usize,
    /// The connections still waiting for their head, the oldest first.
    waiting: VecDeque<Arc<Waiter>>,
}

/// An admitted connection's socket, shared by its thread (which reads and
/// writes it) and the slots (which may shut it down to reclaim its slot).
struct Waiter {
    socket: TcpStream,
    /// Whether it is in `waiting` (changed only under the lock).
    waiting: AtomicBool,
    reclaimed: AtomicBool,
}

/// One connection's slot, held by its thread and given back when the
/// thread ends, whichever way it ends: a panic unwinds through this drop.
pub struct Slot {
    slots: Arc<Slots>,
    waiter: Arc<Waiter>,
}

/// One of the `TURN_AWAY_THREADS`, given back when its thread ends.
pub struct TurnAway(Arc<Slots>);

impl Slots {
    pub fn new(max: usize) -> Arc<Slots> {
        let waiting = VecDeque::new();
        Arc::new(Slots {
            max,
            state: Mutex::new(State { open: 0, waiting }),
            turning_away: AtomicUsize::new(0),
        })
    }

    /// Gives a newcomer a slot: a free one, or else the slot of the
    /// connection that has waited longest for its head, which is shut down
    /// (its thread sees the connection end and leaves). When every slot is
    /// at work, the socket comes back: the server is full.
    pub fn admit(self: &Arc<Self>, socket: TcpStream) -> Result<Slot, TcpStream> {
        let mut state = self.lock();
        if state.open < self.max {
            state.open += 1;
        } else if let Some(oldest) = state.waiting.pop_front() {
            oldest.waiting.store(false, SeqCst);
            oldest.reclaimed.store(true, SeqCst);
            let _ = oldest.socket.shutdown(Shutdown::Both);
        } else {
            return Err(socket);
        }
        let waiter = Arc::new(Waiter {
            socket,
            waiting: AtomicBool::new(true),
            reclaimed: AtomicBool::new(false),
        });
        state.waiting.push_back(Arc::clone(&waiter));
        let slots = Arc::clone(self);
        Ok(Slot { slots, waiter })
    }

    /// Claims one of the `TURN_AWAY_THREADS`, if one is free.
    pub fn claim_turn_away(self: &Arc<Self>) -> Option<TurnAway> {
        let room = |busy: usize| (busy < TURN_AWAY_THREADS).then_some(busy + 1);
        let claimed = self.turning_away.fetch_update(SeqCst, SeqCst, room);
        claimed.ok().map(|_| TurnAway(Arc::clone(self)))
    }

    /// A poisoned lock only means a thread panicked while holding it; the
    /// counts it guards change in single steps, so they are still sound.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl State {
    /// Takes the connection out of `waiting`. A linear search from the
    /// back, where the newest waiters are: under a flood the list is long,
    /// but it is the newest that send their heads.
    fn stop_waiting(&mut self, waiter: &Arc<Waiter>) {
        if waiter.waiting.swap(false, SeqCst) {
            let waiting = &mut self.waiting;
            if let Some(at) = waiting.iter().rposition(|w| Arc::ptr_eq(w, waiter)) {
                waiting.remove(at);
            }
        }
    }
}

impl Slot {
    pub fn socket(&self) -> &TcpStream {
        &self.waiter.socket
    }

    /// Keeps the slot for good, now that the head has arrived: it can no
    /// longer be reclaimed. `false` if it was reclaimed before that.
    pub fn keep(&self) -> bool {
        let mut state = self.slots.lock();
        state.stop_waiting(&self.waiter);
        !self.waiter.reclaimed.load(SeqCst)
    }
}

impl Drop for Slot {
    /// Frees the slot (unless it was reclaimed: then it is someone else's).
    fn drop(&mut self) {
        let mut state = self.slots.lock();
        state.stop_waiting(&self.waiter);
        if !self.waiter.reclaimed.load(SeqCst) {
            state.open -= 1;
        }
    }
}

impl Drop for TurnAway {
    fn drop(&mut self) {
        self.0.turning_away.fetch_sub(1, SeqCst);
    }
}

/// A connection with a slot: read its head within the head timeout, keep
/// the slot, answer.
pub fn serve(slot: Slot, peer: SocketAddr, site: &Site) {
    let started = Instant::now();
    let request = http::read_request(slot.socket(), started + site.settings.head_timeout);
    if slot.keep() {
        http::serve(slot.socket(), peer, site, request, false, started);
    }
}

/// A newcomer that found every slot at work, on one of the few turn-away
/// threads: its head gets `TURN_AWAY_HEAD_TIMEOUT`, and the answer brings
/// it back later (see `http::respond`).
pub fn turn_away(_turn: TurnAway, socket: TcpStream, peer: SocketAddr, site: &Site) {
    let started = Instant::now();
    let request = http::read_request(&socket, started + TURN_AWAY_HEAD_TIMEOUT);
    http::serve(&socket, peer, site, request, true, started);
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
    fn a_full_server_reclaims_the_slot_that_has_waited_longest_for_its_head() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let slots = Slots::new(2);
        let first = slots.admit(socket(&listener)).expect("a free slot");
        let second = slots.admit(socket(&listener)).expect("a free slot");
        let third = slots
            .admit(socket(&listener))
            .expect("the first one's slot");
        assert!(!first.keep(), "the first was reclaimed");
        assert!(second.keep() && third.keep());
        assert!(slots.admit(socket(&listener)).is_err(), "all kept: full");
        drop(first);
        assert!(slots.admit(socket(&listener)).is_err(), "not freed twice");
        drop(second);
        assert!(
            slots.admit(socket(&listener)).is_ok(),
            "a slot left is free"
        );
    }

    #[test]
    fn at_most_eight_threads_turn_newcomers_away() {
        let slots = Slots::new(1);
        let turns: Vec<_> = (0..20).filter_map(|_| slots.claim_turn_away()).collect();
        assert_eq!(turns.len(), TURN_AWAY_THREADS);
        drop(turns);
        assert!(slots.claim_turn_away().is_some(), "given back");
    }
}
