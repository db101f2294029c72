//! Kahn's algorithm over "item i reads item p" edges: the order the graph and the importers run things in.

use std::collections::BTreeSet;

/// Indices `0..n` ordered so each comes after every item it reads; stable (keeps the file's
/// order where it is already valid). `Err(i)` names an item on a cycle.
pub fn run_order(n: usize, reads: impl IntoIterator<Item = (usize, usize)>) -> Result<Vec<usize>, usize> {
    let mut indegree = vec![0usize; n];
    let mut users: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (reader, producer) in reads {
        indegree[reader] += 1;
        users[producer].push(reader);
    }
    let mut ready: BTreeSet<usize> = (0..n).filter(|&i| indegree[i] == 0).collect();
    let mut order = Vec::with_capacity(n);
    while let Some(i) = ready.pop_first() {
        order.push(i);
        for &u in &users[i] {
            indegree[u] -= 1;
            if indegree[u] == 0 {
                ready.insert(u);
            }
        }
    }
    if order.len() != n {
        return Err((0..n).find(|&i| indegree[i] > 0).unwrap_or(0));
    }
    Ok(order)
}
