//! Lesson 5: protection. At most `--max-connections` connections hold a slot (a thread), and at
//! most `--max-per-address` of them come from one address. When full or out of descriptors, the
//! one waiting longest for its head makes room: a flood that never sends a byte (slowloris)
//! pushes only itself out, never a stream. A newcomer turned away gets an extra thread.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, Ipv6Addr, Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::http::{self, Site};
use crate::request::RequestError;

/// Extra threads that answer "come back later" when every slot is at work; past them, newcomers
/// are closed, which an `EventSource` also retries. Being few, they wait briefly for a head.
pub const TURN_AWAY_THREADS: usize = 8;
pub const TURN_AWAY_HEAD_TIMEOUT: Duration = Duration::from_secs(1);

pub struct Slots {
    max: usize,
    per_address: usize,
    state: Mutex<State>,
    turning_away: AtomicUsize,
}

#[derive(Default)]
struct State {
    /// Connections holding a slot (reclaimed ones no longer count).
    open: usize,
    /// How many of them each address holds (`address_of`); none at 0, so it stays small.
    held: HashMap<IpAddr, usize>,
    /// The connections still waiting for their head, the oldest first.
    waiting: VecDeque<Arc<Waiter>>,
}

/// A newcomer turned away: its socket, and why, for the log.
pub type Refused = (TcpStream, &'static str);

/// An admitted connection's socket, shared by its thread and the slots.
struct Waiter {
    socket: TcpStream,
    /// What it counts against (`address_of`).
    address: Option<IpAddr>,
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

/// The address a peer counts against: IPv4 whole (also as `::ffff:a.b.c.d`), IPv6 per /64 (one
/// host is often given a whole /64), loopback not at all (`None`: a proxy on this host, say).
pub fn address_of(peer: IpAddr) -> Option<IpAddr> {
    match peer.to_canonical() {
        ip if ip.is_loopback() => None,
        IpAddr::V6(ip) => Some(IpAddr::V6(Ipv6Addr::from(u128::from(ip) >> 64 << 64))),
        ip => Some(ip),
    }
}

impl Slots {
    pub fn new(max: usize, per_address: usize) -> Arc<Slots> {
        let (state, turning_away) = (Mutex::default(), AtomicUsize::new(0));
        Arc::new(Slots {
            max,
            per_address,
            state,
            turning_away,
        })
    }

    /// Gives a newcomer a free slot, or the slot of the connection that has
    /// waited longest for its head (shut down); or, when full or when its
    /// address holds its share, its socket back with the reason.
    pub fn admit(self: &Arc<Self>, socket: TcpStream, peer: IpAddr) -> Result<Slot, Refused> {
        let mut state = self.lock();
        let address = address_of(peer);
        let held = address.and_then(|address| state.held.get(&address).copied());
        if held.unwrap_or(0) >= self.per_address {
            return Err((socket, "full for one address (--max-per-address)"));
        }
        if state.open >= self.max && !state.reclaim_oldest() {
            return Err((socket, "full (--max-connections): every slot taken"));
        }
        state.open += 1;
        if let Some(address) = address {
            *state.held.entry(address).or_default() += 1;
        }
        let waiter = Arc::new(Waiter {
            socket,
            address,
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
        self.release(&oldest);
        true
    }

    /// Frees a slot and its count against its address.
    fn release(&mut self, waiter: &Waiter) {
        self.open -= 1;
        if let Some(address) = waiter.address {
            let held = self.held.entry(address).or_insert(1);
            *held -= 1;
            if *held == 0 {
                self.held.remove(&address);
            }
        }
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
            state.release(&self.waiter);
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

/// A newcomer turned away, told to come back later (`http::respond`). One slow with its head is
/// closed unanswered: a `408` would end an `EventSource` for good; a close is retried (9.2.3).
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

    /// A peer's address (not loopback, which is not counted).
    const PEER: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1));

    /// A connected socket to hand to `admit` (the other end is dropped).
    fn socket(listener: &TcpListener) -> TcpStream {
        TcpStream::connect(listener.local_addr().expect("address")).expect("connect")
    }

    #[test]
    fn a_full_server_reclaims_the_slot_that_has_waited_longest_for_its_head() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let slots = Slots::new(2, 10);
        let first = slots.admit(socket(&listener), PEER).expect("a free slot");
        let second = slots.admit(socket(&listener), PEER).expect("a free slot");
        let third = slots
            .admit(socket(&listener), PEER)
            .expect("the first one's slot");
        assert!(!first.keep(), "the first was reclaimed");
        assert!(second.keep() && third.keep());
        assert!(
            slots.admit(socket(&listener), PEER).is_err(),
            "all kept: full"
        );
        drop(first);
        assert!(
            slots.admit(socket(&listener), PEER).is_err(),
            "not freed twice"
        );
        drop(second);
        assert!(
            slots.admit(socket(&listener), PEER).is_ok(),
            "a slot left is free"
        );
    }

    #[test]
    fn out_of_descriptors_the_oldest_silent_connection_is_closed_and_its_slot_freed() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let slots = Slots::new(2, 10);
        let first = slots.admit(socket(&listener), PEER).expect("a free slot");
        let second = slots.admit(socket(&listener), PEER).expect("a free slot");
        assert!(second.keep(), "its head is in: never reclaimed");
        assert!(slots.reclaim_oldest(), "the first was waiting");
        assert!(!slots.reclaim_oldest(), "nobody else is");
        assert!(!first.keep(), "the first was reclaimed");
        let mut byte = [0u8; 1];
        let read = first.waiter.socket.peek(&mut byte);
        assert!(matches!(read, Ok(0) | Err(_)), "and shut down: {read:?}");
        let third = slots
            .admit(socket(&listener), PEER)
            .expect("its slot is free");
        assert!(third.keep());
        drop(first);
        assert!(
            slots.admit(socket(&listener), PEER).is_err(),
            "not freed twice"
        );
        drop((second, third));
    }

    #[test]
    fn one_address_holds_at_most_its_share_and_loopback_is_not_counted() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let slots = Slots::new(10, 2);
        let other: IpAddr = "192.0.2.2".parse().expect("an address");
        let held = [
            slots.admit(socket(&listener), PEER),
            slots.admit(socket(&listener), PEER),
        ];
        let over = slots.admit(socket(&listener), PEER).map(drop);
        let why = over.expect_err("over its share").1;
        assert!(why.contains("(--max-per-address)"), "{why}");
        assert!(
            slots.admit(socket(&listener), other).is_ok(),
            "another address"
        );
        let loopback: Vec<_> = (0..5)
            .map(|_| slots.admit(socket(&listener), "::1".parse().expect("::1")))
            .collect();
        assert!(loopback.iter().all(Result::is_ok), "loopback: a proxy here");
        drop(held);
        assert!(slots.admit(socket(&listener), PEER).is_ok(), "given back");
    }

    #[test]
    fn ipv6_addresses_count_per_64_and_mapped_ipv4_as_ipv4() {
        let of = |ip: &str| address_of(ip.parse().expect("an address"));
        assert_eq!(of("2001:db8:1:2:aaaa::1"), of("2001:db8:1:2:bbbb::2"));
        assert_ne!(of("2001:db8:1:2::1"), of("2001:db8:1:3::1"));
        assert_eq!(of("::ffff:192.0.2.1"), Some(PEER));
        assert_eq!(
            (of("127.0.0.2"), of("::ffff:127.0.0.1"), of("::1")),
            (None, None, None)
        );
    }

    #[test]
    fn at_most_eight_threads_turn_newcomers_away() {
        let slots = Slots::new(1, 1);
        let turns: Vec<_> = (0..20).filter_map(|_| slots.claim_turn_away()).collect();
        assert_eq!(turns.len(), TURN_AWAY_THREADS);
        drop(turns);
        assert!(slots.claim_turn_away().is_some(), "given back");
    }
}
