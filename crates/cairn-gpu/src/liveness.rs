//! Buffer pooling by liveness within a run: a value whose last reader has been recorded gives
//! its buffer to a later value that fits, so a program holds about the largest set of values
//! alive at once instead of every value it computes.
//!
//! Works on the command order of a program (dispatches and CPU steps), with views already
//! resolved to the value that owns the buffer (the "root"). A command's output is assigned
//! before its inputs are released, so no dispatch binds one buffer as both input and output
//! (WebGPU rejects that). Values written by `queue.write_buffer` (run-time inputs, a CPU
//! step's uploads) keep buffers of their own: such a write lands before every command of the
//! pending submission, so it must not share a buffer with a value those commands still use.

/// What one command writes and reads, as roots.
pub struct Access {
    pub writes: Vec<usize>,
    pub reads: Vec<usize>,
}

/// The buffer (slot) of each root and the size of each slot.
#[derive(Debug, PartialEq, Eq)]
pub struct Slots {
    pub slot_of: Vec<Option<usize>>,
    pub slot_bytes: Vec<u64>,
}

/// Assigns slots. `bytes[v]`: `Some(size)` for roots that need a buffer; `pinned[v]`: roots
/// with a buffer of their own; `to_end[v]`: roots read after the last command (graph outputs).
pub fn assign(commands: &[Access], bytes: &[Option<u64>], pinned: &[bool], to_end: &[bool]) -> Slots {
    let n = bytes.len();
    // The last command touching each root (written-only values are released after their writer).
    let mut last = vec![None::<usize>; n];
    for (i, c) in commands.iter().enumerate() {
        for &v in c.writes.iter().chain(&c.reads) {
            last[v] = Some(i);
        }
    }
    let mut slot_of = vec![None; n];
    let mut slot_bytes = Vec::new();
    for v in 0..n {
        if let (Some(b), true) = (bytes[v], pinned[v]) {
            slot_of[v] = Some(slot_bytes.len());
            slot_bytes.push(b);
        }
    }
    let mut free: Vec<usize> = Vec::new();
    for (i, c) in commands.iter().enumerate() {
        for &w in &c.writes {
            let Some(need) = bytes[w] else { continue };
            if slot_of[w].is_some() {
                continue;
            }
            // Best fit: the smallest free slot that holds the value, else a new slot.
            let best = free.iter().enumerate().filter(|(_, &s)| slot_bytes[s] >= need).min_by_key(|(_, &s)| slot_bytes[s]).map(|(k, _)| k);
            slot_of[w] = Some(match best {
                Some(k) => free.swap_remove(k),
                None => {
                    slot_bytes.push(need);
                    slot_bytes.len() - 1
                }
            });
        }
        let mut done: Vec<usize> = c.writes.iter().chain(&c.reads).copied().filter(|&v| last[v] == Some(i)).collect();
        done.sort_unstable();
        done.dedup();
        for v in done {
            if !pinned[v] && !to_end[v] {
                if let Some(s) = slot_of[v] {
                    free.push(s);
                }
            }
        }
    }
    Slots { slot_of, slot_bytes }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acc(writes: &[usize], reads: &[usize]) -> Access {
        Access { writes: writes.to_vec(), reads: reads.to_vec() }
    }

    #[test]
    fn a_chain_reuses_the_buffers_of_finished_values() {
        // 0 (input, pinned) -> 1 -> 2 -> 3 -> 4 (output): 1 and 3 can share, 2 and 4 can share
        // only if 4 fits; every command's output differs from its input's buffer.
        let cmds = [acc(&[1], &[0]), acc(&[2], &[1]), acc(&[3], &[2]), acc(&[4], &[3])];
        let bytes = [Some(64), Some(100), Some(100), Some(100), Some(40)];
        let pinned = [true, false, false, false, false];
        let to_end = [false, false, false, false, true];
        let s = assign(&cmds, &bytes, &pinned, &to_end);
        assert_eq!(s.slot_of[3], s.slot_of[1]);
        assert_eq!(s.slot_of[4], s.slot_of[2]);
        for (c, a) in cmds.iter().enumerate() {
            assert_ne!(s.slot_of[a.writes[0]], s.slot_of[a.reads[0]], "command {c} reads and writes one buffer");
        }
        assert_eq!(s.slot_bytes, vec![64, 100, 100]);
    }

    #[test]
    fn pinned_outputs_and_too_small_slots_are_not_reused() {
        // 1 is an output (alive to the end); 2 is larger than any freed slot.
        let cmds = [acc(&[1], &[0]), acc(&[3], &[0]), acc(&[2], &[3])];
        let bytes = [Some(8), Some(8), Some(32), Some(16)];
        let s = assign(&cmds, &bytes, &[true, false, false, false], &[false, true, false, false]);
        let all: Vec<_> = s.slot_of.iter().map(|x| x.unwrap()).collect();
        assert_eq!(all.len(), 4);
        assert_eq!(s.slot_bytes.len(), 4, "{s:?}");
    }

    #[test]
    fn a_value_with_several_writers_keeps_its_slot_until_its_last_reader() {
        // Concat-like: 1 and 2 written into 3 by two commands, then 3 read; 4 after.
        let cmds = [acc(&[1], &[0]), acc(&[2], &[0]), acc(&[3], &[1]), acc(&[3], &[2]), acc(&[4], &[3])];
        let bytes = [Some(4), Some(4), Some(4), Some(8), Some(4)];
        let s = assign(&cmds, &bytes, &[true, false, false, false, false], &[false, false, false, false, true]);
        assert_ne!(s.slot_of[3], s.slot_of[2], "3 is written while 2 is still to be read");
        assert_ne!(s.slot_of[4], s.slot_of[3]);
        assert!(s.slot_of[4] == s.slot_of[1] || s.slot_of[4] == s.slot_of[2]);
    }
}
