//! Lesson 5: protection. At most `--max-connections` connections hold a slot
//! (a thread). When full or out of descriptors, the one waiting longest for its
//! head makes room: a flood that never sends a byte (slowloris) pushes only
//! itself out, never a stream. A newcomer to a full server gets an extra thread.

use std::collections::VecDeque;
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::http::{self, Site};
use crate::request::RequestError;

/// Extra threads that answer "come back later" when every slot is at work;
/// past them, newcomers are closed, which an `EventSource` also retries.
pub const TURN_AWAY_THREADS: usize = 8;

/// A turn-away thread is one of a few, so it waits briefly for the head.
pub const TURN_AWAY_HEAD_TIMEOUT: Duration = Duration::from_secs(1);

pub struct Slots {
    max: usize,
    state: Mutex<State>,
    turning_away: AtomicUsize,
}

struct State {
    /// Connections holding a slot (reclaimed ones no longer count).
    open: usize,
    /// The connections still waiting for their head, the oldest first.
    waiting: VecDeque<Arc<Waiter>>,
}

/// An admitted connection's socket, shared by its thread and the slots.
struct Waiter {
    socket: TcpStream,
    /// Whether it is in `waiting` (changed only under the lock).
    waiting: AtomicBool,
    reclaimed: AtomicBool,
}

/// One connection's slot, given back when its thread ends, even by a panic.
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

    /// Gives a newcomer a free slot, or the slot of the connection that has
    /// waited longest for its head (shut down); or, when full, its socket back.
    pub fn admit(self: &Arc<Self>, socket: TcpStream) -> Result<Slot, TcpStream> {
        let mut state = self.lock();
        if state.open >= self.max && !state.reclaim_oldest() {
            return Err(socket);
        }
        state.open += 1;
        let waiter = Arc::new(Waiter {
            socket,
            waiting: AtomicBool::new(true),
            reclaimed: AtomicBool::new(false),
        });
        state.waiting.push_back(Arc::clone(&waiter));
        let slots = Arc::clone(self);
        Ok(Slot { slots, waiter })
    }

    /// Closes the oldest waiting connection, for an `accept` short of descriptors.
    pub fn reclaim_oldest(&self) -> bool {
        self.lock().reclaim_oldest()
    }

    pub fn claim_turn_away(self: &Arc<Self>) -> Option<TurnAway> {
        let room = |busy: usize| (busy < TURN_AWAY_THREADS).then_some(busy + 1);
        let claimed = self.turning_away.fetch_update(SeqCst, SeqCst, room);
        claimed.ok().map(|_| TurnAway(Arc::clone(self)))
    }

    /// A poisoned lock means a panic elsewhere; the counts change in one step.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl State {
    /// Shuts the oldest waiting connection down: its thread's read ends, the
    /// thread closes the socket; the slot is free now, not counted twice.
    fn reclaim_oldest(&mut self) -> bool {
        let Some(oldest) = self.waiting.pop_front() else {
            return false;
        };
        oldest.waiting.store(false, SeqCst);
        oldest.reclaimed.store(true, SeqCst);
        let _ = oldest.socket.shutdown(Shutdown::Both);
        self.open -= 1;
        true
    }

    /// Takes the connection out of `waiting`, searching from the back: under
    /// a flood the list is long, but it is the newest that send their heads.
    fn stop_waiting(&mut self, waiter: &Arc<Waiter>) {
        if waiter.waiting.swap(false, SeqCst) {
            if let Some(at) = self.waiting.iter().rposition(|w| Arc::ptr_eq(w, waiter)) {
                self.waiting.remove(at);
            }
        }
    }
}

impl Slot {
    /// Keeps the slot for good, now the head is in; `false` if reclaimed before.
    pub fn keep(&self) -> bool {
        self.slots.lock().stop_waiting(&self.waiter); // out of `waiting`: never reclaimed now
        !self.waiter.reclaimed.load(SeqCst)
    }
}

impl Drop for Slot {
    /// Frees the slot (unless it was reclaimed: freed then).
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

/// A connection with a slot: read its head in time, keep the slot, answer.
pub fn serve(slot: Slot, peer: SocketAddr, site: &Site) {
    let started = Instant::now();
    let socket = &slot.waiter.socket;
    let request = http::read_request(socket, started + site.settings.head_timeout);
    if slot.keep() {
        http::serve(socket, peer, site, request, false, started);
    }
}

/// A newcomer to a full server, told to come back later (`http::respond`).
/// One slow with its head is closed unanswered: its route is unknown, and a
/// `408` would end an `EventSource` for good, where a close is retried (WHATWG 9.2.3).
pub fn turn_away(_turn: TurnAway, socket: TcpStream, peer: SocketAddr, site: &Site) {
    let started = Instant::now();
    let request = match http::read_request(&socket, started + TURN_AWAY_HEAD_TIMEOUT) {
        Err(RequestError::Timeout) => Err(RequestError::Closed),
        request => request,
    };
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
    fn out_of_descriptors_the_oldest_silent_connection_is_closed_and_its_slot_freed() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let slots = Slots::new(2);
        let first = slots.admit(socket(&listener)).expect("a free slot");
        let second = slots.admit(socket(&listener)).expect("a free slot");
        assert!(second.keep(), "its head is in: never reclaimed");
        assert!(slots.reclaim_oldest(), "the first was waiting");
        assert!(!slots.reclaim_oldest(), "nobody else is");
        assert!(!first.keep(), "the first was reclaimed");
        let mut byte = [0u8; 1];
        let read = first.waiter.socket.peek(&mut byte);
        assert!(matches!(read, Ok(0) | Err(_)), "and shut down: {read:?}");
        let third = slots.admit(socket(&listener)).expect("its slot is free");
        assert!(third.keep());
        drop(first);
        assert!(slots.admit(socket(&listener)).is_err(), "not freed twice");
        drop((second, third));
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
