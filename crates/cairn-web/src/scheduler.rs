//! The worker's request queue: bounded, by priority, with latest-wins streams.
//!
//! The worker is single-threaded: while a model runs, requests pile up as
//! messages; between runs the worker pushes them all here and asks for the next.
//! A request in a latest-wins stream (a camera feed) replaces the stream's
//! waiting request, so stale frames are dropped instead of queued. When the
//! queue is full, the oldest request of the lowest priority is dropped.

use std::collections::VecDeque;
use wasm_bindgen::prelude::*;

#[derive(Clone, Debug, PartialEq)]
struct Waiting {
    id: u32,
    priority: i32,
    stream: Option<String>,
    /// Requests with the same group (model and input shape) can run as one batch.
    group: String,
}

/// What `push` did: the ids whose requests are dropped (to be answered as such).
#[wasm_bindgen]
#[derive(Default)]
pub struct Scheduler {
    bound: usize,
    queue: VecDeque<Waiting>,
    dropped: Vec<u32>,
    high_water: usize,
}

#[wasm_bindgen]
impl Scheduler {
    #[wasm_bindgen(constructor)]
    pub fn new(bound: u32) -> Scheduler {
        Scheduler { bound: bound.max(1) as usize, ..Default::default() }
    }

    /// Queues a request. `stream` names a latest-wins stream ("" for none); `group`
    /// says which requests may share a batch ("" for none).
    /// Returns false if the request itself was dropped (queue full of higher priorities).
    pub fn push(&mut self, id: u32, priority: i32, stream: &str, group: &str) -> bool {
        let stream = (!stream.is_empty()).then(|| stream.to_string());
        if let Some(s) = &stream {
            if let Some(pos) = self.queue.iter().position(|w| w.stream.as_ref() == Some(s)) {
                let stale = self.queue.remove(pos).expect("position is in range");
                self.dropped.push(stale.id);
            }
        }
        if self.queue.len() >= self.bound {
            // The victim: lowest priority, oldest first; the newcomer if it ranks lowest.
            let victim = self.queue.iter().enumerate().min_by_key(|(i, w)| (w.priority, *i)).map(|(i, w)| (i, w.priority));
            match victim {
                Some((i, p)) if p <= priority => {
                    let w = self.queue.remove(i).expect("index from enumerate");
                    self.dropped.push(w.id);
                }
                _ => {
                    self.dropped.push(id);
                    return false;
                }
            }
        }
        self.queue.push_back(Waiting { id, priority, stream, group: group.to_string() });
        self.high_water = self.high_water.max(self.queue.len());
        true
    }

    /// The next request to run: highest priority, then first come.
    pub fn next_request(&mut self) -> Option<u32> {
        let best = self.peek_best()?;
        self.queue.remove(best).map(|w| w.id)
    }

    /// The next request and up to `max - 1` more waiting in its group, to run as one
    /// batch (empty when nothing waits). Batch-mates keep their order of arrival.
    #[wasm_bindgen(js_name = nextBatch)]
    pub fn next_batch(&mut self, max: u32) -> Vec<u32> {
        let Some(first) = self.peek_best() else { return Vec::new() };
        let group = self.queue[first].group.clone();
        let mut batch = vec![self.queue.remove(first).expect("index from peek").id];
        if !group.is_empty() {
            while batch.len() < max as usize {
                let Some(pos) = self.queue.iter().position(|w| w.group == group) else { break };
                batch.push(self.queue.remove(pos).expect("position is in range").id);
            }
        }
        batch
    }

    /// Removes a waiting request (cancellation); false if it is not waiting.
    pub fn cancel(&mut self, id: u32) -> bool {
        match self.queue.iter().position(|w| w.id == id) {
            Some(pos) => {
                self.queue.remove(pos);
                true
            }
            None => false,
        }
    }

    /// Ids dropped since the last call (stale stream frames, overflow).
    #[wasm_bindgen(js_name = takeDropped)]
    pub fn take_dropped(&mut self) -> Vec<u32> {
        std::mem::take(&mut self.dropped)
    }

    pub fn len(&self) -> u32 {
        self.queue.len() as u32
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// The longest the queue has been.
    #[wasm_bindgen(js_name = highWater)]
    pub fn high_water(&self) -> u32 {
        self.high_water as u32
    }
}

impl Scheduler {
    fn peek_best(&self) -> Option<usize> {
        self.queue.iter().enumerate().max_by_key(|(i, w)| (w.priority, std::cmp::Reverse(*i))).map(|(i, _)| i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn priorities_first_then_arrival_order() {
        let mut s = Scheduler::new(8);
        s.push(1, 0, "", "");
        s.push(2, 5, "", "");
        s.push(3, 0, "", "");
        s.push(4, 5, "", "");
        assert_eq!(
            [s.next_request(), s.next_request(), s.next_request(), s.next_request(), s.next_request()],
            [Some(2), Some(4), Some(1), Some(3), None]
        );
    }

    #[test]
    fn latest_wins_keeps_one_frame_per_stream() {
        let mut s = Scheduler::new(4);
        for id in 0..100 {
            s.push(id, 0, "camera", "");
            assert_eq!(s.len(), 1);
        }
        s.push(200, 0, "", "");
        assert_eq!(s.take_dropped(), (0..99).collect::<Vec<_>>());
        assert_eq!(s.next_request(), Some(99));
        assert_eq!(s.next_request(), Some(200));
        assert!(s.high_water() <= 2);
    }

    #[test]
    fn a_full_queue_drops_the_oldest_lowest_priority() {
        let mut s = Scheduler::new(2);
        assert!(s.push(1, 0, "", ""));
        assert!(s.push(2, 1, "", ""));
        assert!(s.push(3, 1, "", ""));
        assert_eq!(s.take_dropped(), vec![1]);
        assert!(!s.push(4, 0, "", ""), "a newcomer ranking lowest is the one dropped");
        assert_eq!(s.take_dropped(), vec![4]);
        assert_eq!(s.len(), 2);
    }

    #[test]
    fn batches_take_waiting_requests_of_the_same_group() {
        let mut s = Scheduler::new(16);
        s.push(1, 0, "", "m1:1x3");
        s.push(2, 0, "", "m2:1x3");
        s.push(3, 0, "", "m1:1x3");
        s.push(4, 0, "", "m1:1x3");
        s.push(5, 0, "", "");
        s.push(6, 0, "", "");
        assert_eq!(s.next_batch(2), vec![1, 3]);
        assert_eq!(s.next_batch(8), vec![2]);
        assert_eq!(s.next_batch(8), vec![4]);
        assert_eq!(s.next_batch(8), vec![5], "requests without a group run alone");
        assert_eq!(s.next_batch(8), vec![6]);
        assert!(s.next_batch(8).is_empty());
    }

    #[test]
    fn cancel_removes_only_waiting_requests() {
        let mut s = Scheduler::new(4);
        s.push(1, 0, "", "");
        s.push(2, 0, "", "");
        assert!(s.cancel(1));
        assert!(!s.cancel(1));
        assert_eq!(s.next_request(), Some(2));
        assert!(s.is_empty());
    }
}
