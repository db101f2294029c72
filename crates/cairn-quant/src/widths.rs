//! Run-time widths (and compensated offline pruning) from calibration activations.
//!
//! For every hidden channel `c` of a prunable block (see [`crate::prune`]) the calibration
//! inputs give the mean `μ_c` and variance `σ²_c` of its activation where the project conv
//! reads it. Dropping the channel and adding `W_p[:, c] · μ_c` to the project bias leaves an
//! error of `W_p[:, c] · (a_c − μ_c)` in the block output, whose expected energy is
//! `‖W_p[:, c]‖² σ²_c`. That energy, relative to the energy of the stream the block writes
//! into (the residual sum where there is one), is the channel's *cost*; its *saving* is the
//! multiply-accumulates of its expand filter, depthwise filter and project column. Channels
//! are dropped cheapest cost per saving first, across all blocks, until a width's share of
//! the model's MACs is reached; the order is one list, so narrower widths drop a superset.
//!
//! The hidden channels are then permuted into that order in the weights themselves (exact:
//! the network computes the same function), so every width keeps a prefix, and per width
//! and block one bias vector (the project conv's output channels) holds the compensation.

use crate::bn_prior::{clamped_normal_moments, Priors};
use crate::prune::{blocks, input_name, take_cols, take_rows, Block};
use crate::{Error, Result};
use cairn_core::passes::prepare_for_inference;
use cairn_core::width::{TensorSlice, Width, WidthBlock};
use cairn_core::{narrow, DType, Graph, Session, Tensor, ValueInfo, WidthPlan};
use std::collections::HashMap;
use std::sync::Arc;

/// What calibration saw of one block's hidden channels.
#[derive(Clone, Debug)]
pub struct BlockStats {
    /// Mean activation per hidden channel, where the project conv reads it.
    pub mean: Vec<f64>,
    /// Error energy of dropping each channel (mean-compensated), relative to the energy
    /// of the stream the block writes into.
    pub cost: Vec<f64>,
    /// Multiply-accumulates one hidden channel costs per run (expand + depthwise + project).
    pub macs_per_channel: u64,
}

/// Channel statistics of every prunable block of `graph` on calibration `inputs`. Where
/// `priors` (from [`crate::bn_prior::batchnorm_priors`] of the graph before its
/// BatchNormalizations were folded) describe a block's depthwise output, a hidden channel's
/// mean and variance come from that training-data prior carried through the activation;
/// the calibration inputs still give the energy of the stream each block writes into (a
/// per-block scale) and, for blocks without a prior, the channel statistics themselves.
pub fn measure(graph: &Graph, inputs: &[HashMap<String, Tensor>], priors: &Priors, on_input: &dyn Fn()) -> Result<Vec<BlockStats>> {
    if inputs.is_empty() {
        return Err(Error::Model("measuring channel importance needs calibration inputs (--calibrate DIR)".into()));
    }
    let bs = blocks(graph);
    let readers = readers(graph);
    // Per block: the hidden activation (project input), the expand input, the stream written.
    let probes: Vec<(String, String, String)> = bs
        .iter()
        .map(|b| {
            let p = &graph.nodes[b.project];
            let out = &p.outputs[0];
            let stream = match readers.get(out).map(|v| v.as_slice()) {
                Some([j]) if graph.nodes[*j].op_type == "Add" => graph.nodes[*j].outputs[0].clone(),
                _ => out.clone(),
            };
            (
                p.inputs[0].clone().expect("a conv has an input"),
                graph.nodes[b.expand].inputs[0].clone().expect("a conv has an input"),
                stream,
            )
        })
        .collect();
    let mut g = graph.clone();
    for name in probes.iter().flat_map(|(a, e, s)| [a, e, s]) {
        if !g.outputs.iter().any(|o| &o.name == name) {
            g.outputs.push(ValueInfo { name: name.clone(), dtype: DType::F32, dims: None });
        }
    }
    let session = Session::new(prepare_for_inference(g)?.0);
    let mut sums: Vec<(Vec<f64>, Vec<f64>, f64, u64)> = bs.iter().map(|_| (Vec::new(), Vec::new(), 0.0, 0)).collect();
    let mut spatial: Vec<(usize, usize)> = vec![(0, 0); bs.len()];
    for set in inputs {
        let out: HashMap<String, Tensor> = session.run(set.clone())?.into_iter().collect();
        for (k, (a, e, s)) in probes.iter().enumerate() {
            let (act, inp, stream) = (&out[a], &out[e], &out[s]);
            let (c, hw) = channels(act)?;
            spatial[k] = (channels(inp)?.1, hw);
            let v = act.view().to_f32_vec();
            let acc = &mut sums[k];
            acc.0.resize(c, 0.0);
            acc.1.resize(c, 0.0);
            for ch in 0..c {
                let x = &v[ch * hw..(ch + 1) * hw];
                acc.0[ch] += x.iter().map(|&x| x as f64).sum::<f64>();
                acc.1[ch] += x.iter().map(|&x| (x as f64) * (x as f64)).sum::<f64>();
            }
            let (_, shw) = channels(stream)?;
            acc.2 += stream.view().to_f32_vec().iter().map(|&x| (x as f64) * (x as f64)).sum::<f64>() / shw as f64;
            acc.3 += hw as u64;
        }
        on_input();
    }
    bs.iter()
        .zip(sums)
        .zip(spatial)
        .map(|((b, (s1, s2, energy, n)), (in_hw, hw))| {
            let wp = weight(graph, b.project)?;
            let (we, wd) = (weight(graph, b.expand)?, weight(graph, b.depthwise)?);
            let (m, c) = (wp.shape()[0], wp.shape()[1]);
            let wpv = wp.f32s()?;
            let n = n as f64;
            let per_position_energy = energy / inputs.len() as f64;
            let prior = priors.get(&graph.nodes[b.depthwise].outputs[0]).filter(|p| p.mean.len() == c && p.std.len() == c);
            let (mean, var): (Vec<f64>, Vec<f64>) = match prior {
                Some(p) => {
                    let (lo, hi) = (b.act2.0 as f64, b.act2.1 as f64);
                    (0..c).map(|ch| clamped_normal_moments(p.mean[ch], p.std[ch], lo, hi)).unzip()
                }
                None => (0..c)
                    .map(|ch| {
                        let mean = s1[ch] / n;
                        (mean, (s2[ch] / n - mean * mean).max(0.0))
                    })
                    .unzip(),
            };
            let cost = (0..c)
                .map(|ch| {
                    let norm: f64 = (0..m).map(|o| (wpv[o * c + ch] as f64).powi(2)).sum();
                    norm * var[ch] / per_position_energy.max(1e-30)
                })
                .collect();
            let k: usize = wd.shape()[2..].iter().product();
            let macs_per_channel = (we.shape()[1] * in_hw + k * hw + m * hw) as u64;
            Ok(BlockStats { mean, cost, macs_per_channel })
        })
        .collect()
}

/// How many of `graph`'s prunable blocks `priors` describe, of how many.
pub fn blocks_with_priors(graph: &Graph, priors: &Priors) -> (usize, usize) {
    let bs = blocks(graph);
    let with = bs.iter().filter(|b| priors.contains_key(&graph.nodes[b.depthwise].outputs[0])).count();
    (with, bs.len())
}

/// `(channels, positions per channel)` of an NCHW activation of batch 1.
fn channels(t: &Tensor) -> Result<(usize, usize)> {
    match t.shape() {
        [1, c, rest @ ..] if !rest.is_empty() => Ok((*c, rest.iter().product())),
        s => Err(Error::Model(format!("expected a batch-1 NCHW activation, got shape {s:?}"))),
    }
}

fn readers(graph: &Graph) -> HashMap<String, Vec<usize>> {
    let mut r: HashMap<String, Vec<usize>> = HashMap::new();
    for (i, n) in graph.nodes.iter().enumerate() {
        for v in n.inputs.iter().flatten() {
            r.entry(v.clone()).or_default().push(i);
        }
    }
    r
}

fn weight(graph: &Graph, node: usize) -> Result<Arc<Tensor>> {
    input_name(graph, node, 1)
        .and_then(|n| graph.initializers.get(&n).cloned())
        .ok_or_else(|| Error::Model(format!("conv '{}' has no constant weight", graph.nodes[node].name)))
}

/// Permutes every block's hidden channels into importance order (lowest cost last), in
/// place: the function the graph computes does not change. `stats` is reordered to match.
pub fn order_channels(graph: &mut Graph, stats: &mut [BlockStats]) -> Result<()> {
    let bs = blocks(graph);
    if bs.len() != stats.len() {
        return Err(Error::Model(format!("{} blocks measured, the model has {}", stats.len(), bs.len())));
    }
    for (b, s) in bs.iter().zip(stats.iter_mut()) {
        let mut order: Vec<usize> = (0..s.cost.len()).collect();
        order.sort_by(|&x, &y| s.cost[y].total_cmp(&s.cost[x]));
        for (node, k, cols) in
            [(b.expand, 1, false), (b.expand, 2, false), (b.depthwise, 1, false), (b.depthwise, 2, false), (b.project, 1, true)]
        {
            let Some(n) = input_name(graph, node, k) else { continue };
            let t = graph.initializers[&n].clone();
            let new = if cols { take_cols(&t, &order)? } else { take_rows(&t, &order)? };
            graph.initializers.insert(n, Arc::new(new));
        }
        s.mean = order.iter().map(|&i| s.mean[i]).collect();
        s.cost = order.iter().map(|&i| s.cost[i]).collect();
    }
    Ok(())
}

/// Channels kept per block so that about `fraction` of `total_macs` remains: the cheapest
/// channels (cost per saved MAC) go first, across blocks; every block keeps at least one.
/// Assumes [`order_channels`] ran (each block's cost descending).
pub fn keep_for(stats: &[BlockStats], total_macs: u64, fraction: f32) -> Vec<usize> {
    let mut candidates: Vec<(f64, usize)> = Vec::new();
    for (b, s) in stats.iter().enumerate() {
        for &cost in s.cost.iter().skip(1) {
            candidates.push((cost / s.macs_per_channel.max(1) as f64, b));
        }
    }
    candidates.sort_by(|x, y| x.0.total_cmp(&y.0));
    let mut keep: Vec<usize> = stats.iter().map(|s| s.cost.len()).collect();
    let target = ((1.0 - fraction as f64) * total_macs as f64).max(0.0) as u64;
    let mut dropped = 0u64;
    for (_, b) in candidates {
        if dropped >= target {
            break;
        }
        keep[b] -= 1;
        dropped += stats[b].macs_per_channel;
    }
    keep
}

/// The width plan of a graph whose channels [`order_channels`] ordered: per width, the
/// channels kept and the compensated project biases, added to `graph` as initializers
/// named `<project output>.width<fraction>.bias`. `keeps` pairs each width's fraction with
/// its per-block channel counts (from [`keep_for`]).
pub fn plan(graph: &mut Graph, stats: &[BlockStats], keeps: &[(f32, Vec<usize>)]) -> Result<WidthPlan> {
    let mut plan = plan_without_macs(graph, stats, keeps)?;
    for i in 0..plan.widths.len() {
        plan.widths[i].macs = macs(&narrow(graph, &plan, i)?)?;
    }
    Ok(plan)
}

fn plan_without_macs(graph: &mut Graph, stats: &[BlockStats], keeps: &[(f32, Vec<usize>)]) -> Result<WidthPlan> {
    let bs = blocks(graph);
    let wblocks: Vec<WidthBlock> = bs.iter().map(|b| width_block(graph, b)).collect::<Result<_>>()?;
    let mut widths = Vec::new();
    for (fraction, keep) in keeps {
        let mut bias = Vec::new();
        for ((b, s), &k) in bs.iter().zip(stats).zip(keep) {
            if k >= s.mean.len() {
                bias.push(None);
                continue;
            }
            let wp = weight(graph, b.project)?;
            let (m, c) = (wp.shape()[0], wp.shape()[1]);
            let wpv = wp.f32s()?;
            let mut v: Vec<f64> = match input_name(graph, b.project, 2).and_then(|n| graph.initializers.get(&n).cloned()) {
                Some(t) => t.f32s()?.iter().map(|&x| x as f64).collect(),
                None => vec![0.0; m],
            };
            for (o, out) in v.iter_mut().enumerate() {
                *out += (k..c).map(|ch| wpv[o * c + ch] as f64 * s.mean[ch]).sum::<f64>();
            }
            let name = format!("{}.width{fraction}.bias", graph.nodes[b.project].outputs[0]);
            graph.initializers.insert(name.clone(), Arc::new(Tensor::from_f32(vec![m], v.iter().map(|&x| x as f32).collect())?));
            bias.push(Some(name));
        }
        widths.push(Width { fraction: *fraction, macs: 0, keep: keep.clone(), bias });
    }
    Ok(WidthPlan { blocks: wblocks, widths })
}

/// Puts every block's costs in the units of the model's output: the energy ratio of
/// [`measure`] says which channels of a block matter, but not how much an error in that
/// block moves the prediction (late blocks feed the classifier almost directly, early
/// errors are partly washed out or amplified). Each block alone drops the cheaper half of
/// its channels (compensated) and the mean KL divergence of the output on `probes` is
/// measured; the block's costs are scaled so that their sum over that half equals it.
/// Assumes [`order_channels`] ran. One model run per block and probe input.
pub fn calibrate_costs(graph: &Graph, stats: &mut [BlockStats], probes: &[HashMap<String, Tensor>], on_block: &dyn Fn()) -> Result<()> {
    let reference = Session::new(prepare_for_inference(graph.clone())?.0);
    let first = |s: &Session, set: &HashMap<String, Tensor>| -> Result<Vec<f32>> {
        let out = s.run(set.clone())?;
        Ok(out.into_iter().next().map(|(_, t)| t.view().to_f32_vec()).unwrap_or_default())
    };
    let want: Vec<Vec<f32>> = probes.iter().map(|set| first(&reference, set)).collect::<Result<_>>()?;
    let full: Vec<usize> = stats.iter().map(|s| s.mean.len()).collect();
    for b in 0..stats.len() {
        let c = full[b];
        let mut keep = full.clone();
        keep[b] = c.div_ceil(2);
        let mut g = graph.clone();
        let plan = plan_without_macs(&mut g, stats, &[(0.5, keep)])?;
        let session = Session::new(prepare_for_inference(narrow(&g, &plan, 0)?)?.0);
        let mut a = crate::fidelity::Agreement::default();
        for (set, want) in probes.iter().zip(&want) {
            a.add(want, &first(&session, set)?, None);
        }
        let predicted: f64 = stats[b].cost[c.div_ceil(2)..].iter().sum();
        let scale = a.mean_kl().max(1e-12) / predicted.max(1e-30);
        stats[b].cost.iter_mut().for_each(|x| *x *= scale);
        on_block();
    }
    Ok(())
}

fn width_block(graph: &Graph, b: &Block) -> Result<WidthBlock> {
    let mut slices = Vec::new();
    for (node, k, axis) in [(b.expand, 1, 0), (b.expand, 2, 0), (b.depthwise, 1, 0), (b.depthwise, 2, 0), (b.project, 1, 1)] {
        if let Some(tensor) = input_name(graph, node, k) {
            slices.push(TensorSlice { tensor, axis });
        }
    }
    Ok(WidthBlock {
        hidden: weight(graph, b.expand)?.shape()[0],
        slices,
        grouped: vec![graph.nodes[b.depthwise].outputs[0].clone()],
        project: graph.nodes[b.project].outputs[0].clone(),
    })
}

/// Multiply-accumulates of one run of `graph` with every input at its declared shape
/// (symbolic dims 1).
pub fn macs(graph: &Graph) -> Result<u64> {
    let session = Session::new(prepare_for_inference(graph.clone())?.0);
    let mut inputs = HashMap::new();
    for i in graph.runtime_inputs() {
        let shape: Vec<usize> = i
            .dims
            .as_ref()
            .ok_or_else(|| Error::Model(format!("input '{}' has no declared shape", i.name)))?
            .iter()
            .map(|d| match d {
                cairn_core::Dim::Known(n) => *n,
                cairn_core::Dim::Sym(_) => 1,
            })
            .collect();
        inputs.insert(i.name.clone(), Tensor::zeros(i.dtype, shape)?);
    }
    Ok(session.plan(&inputs)?.macs)
}

/// Offline pruning with the same compensation: drops `ratio_of(block name)` of each
/// block's hidden channels, least important (on calibration data) first, and folds their
/// mean contribution into the project bias. Returns the pruned graph.
pub fn prune_compensated(graph: &Graph, stats: &[BlockStats], ratio_of: &dyn Fn(&str) -> f32) -> Result<Graph> {
    let mut g = graph.clone();
    let mut stats = stats.to_vec();
    order_channels(&mut g, &mut stats)?;
    let bs = blocks(&g);
    let keep: Vec<usize> = bs
        .iter()
        .zip(&stats)
        .map(|(b, s)| {
            let ratio = ratio_of(&g.nodes[b.expand].outputs[0]);
            let c = s.mean.len();
            if !(0.0..1.0).contains(&ratio) {
                return Err(Error::Model(format!("pruning ratio {ratio} of block '{}' is not in [0, 1)", g.nodes[b.expand].outputs[0])));
            }
            Ok(c - ((c as f32 * ratio).round() as usize).min(c - 1))
        })
        .collect::<Result<_>>()?;
    // One width holding exactly these channels; its cut graph is the pruned model.
    let plan = plan(&mut g, &stats, &[(0.5, keep)])?;
    Ok(narrow(&g, &plan, 0)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_core::{Attr, Attrs, Dim, Node, NodeSpec, Registry};

    fn node(op: &str, inputs: &[&str], output: &str, attrs: Attrs) -> Node {
        let spec = NodeSpec {
            name: output.into(),
            domain: String::new(),
            op_type: op.into(),
            attrs,
            inputs: inputs.iter().map(|s| Some(s.to_string())).collect(),
            outputs: vec![output.into()],
        };
        Node::build(spec, 13, Registry::global()).unwrap()
    }

    /// expand (6 hidden channels, the odd ones dead: zero filters, nonzero bias, so their
    /// activation is a constant) -> Relu -> depthwise 3x3 -> Relu -> project.
    fn block() -> Graph {
        let t = |shape: Vec<usize>, v: Vec<f32>| Arc::new(Tensor::from_f32(shape, v).unwrap());
        let mut init = HashMap::new();
        let we: Vec<f32> = (0..6 * 3).map(|i| if (i / 3) % 2 == 1 { 0.0 } else { 0.2 + 0.1 * i as f32 }).collect();
        init.insert("we".to_string(), t(vec![6, 3, 1, 1], we));
        init.insert("be".to_string(), t(vec![6], vec![0.1, 0.7, -0.2, 0.4, 0.3, 0.9]));
        init.insert("wd".to_string(), t(vec![6, 1, 3, 3], (0..54).map(|i| ((i * 5 % 7) as f32 - 3.0) * 0.2).collect()));
        init.insert("bd".to_string(), t(vec![6], vec![0.05, 0.5, -0.1, 0.2, 0.3, 0.6]));
        init.insert("wp".to_string(), t(vec![2, 6, 1, 1], (0..12).map(|i| ((i * 7 % 11) as f32 - 5.0) * 0.3).collect()));
        let mut group = Attrs::new();
        group.insert("group".into(), Attr::Int(6));
        Graph {
            inputs: vec![ValueInfo {
                name: "x".into(),
                dtype: DType::F32,
                dims: Some(vec![Dim::Known(1), Dim::Known(3), Dim::Known(6), Dim::Known(6)]),
            }],
            outputs: vec![ValueInfo { name: "y".into(), dtype: DType::F32, dims: None }],
            initializers: init,
            nodes: vec![
                node("Conv", &["x", "we", "be"], "e", Attrs::new()),
                node("Relu", &["e"], "e1", Attrs::new()),
                node("Conv", &["e1", "wd", "bd"], "d", group),
                node("Relu", &["d"], "d1", Attrs::new()),
                node("Conv", &["d1", "wp"], "y", Attrs::new()),
            ],
            opset: 13,
        }
    }

    fn input(seed: f32) -> HashMap<String, Tensor> {
        let x = Tensor::from_f32(vec![1, 3, 6, 6], (0..108).map(|i| (i as f32 * 0.31 + seed).sin()).collect()).unwrap();
        HashMap::from([("x".to_string(), x)])
    }

    fn run(g: &Graph, set: &HashMap<String, Tensor>) -> Vec<f32> {
        Session::new(g.clone()).run(set.clone()).unwrap()[0].1.f32s().unwrap().to_vec()
    }

    /// A prior for the depthwise output replaces the calibration statistics: each hidden
    /// channel's mean is the prior carried through the Relu, its cost the prior's variance
    /// (a channel the prior calls constant costs nothing, whatever calibration saw); blocks
    /// are still found and ordered the same way.
    #[test]
    fn batchnorm_priors_replace_calibration_statistics() {
        let graph = block();
        let sets: Vec<_> = (0..2).map(|i| input(i as f32)).collect();
        let prior = crate::bn_prior::ChannelPrior { mean: vec![0.5, -1.0, 2.0, 0.0, 1.0, 3.0], std: vec![1.0, 0.0, 0.5, 2.0, 0.0, 1.0] };
        let priors = Priors::from([("d".to_string(), prior.clone())]);
        assert_eq!(blocks_with_priors(&graph, &priors), (1, 1));
        let stats = measure(&graph, &sets, &priors, &|| {}).unwrap();
        for ch in 0..6 {
            let (m, v) = clamped_normal_moments(prior.mean[ch], prior.std[ch], 0.0, f64::INFINITY);
            assert!((stats[0].mean[ch] - m).abs() < 1e-12, "channel {ch}");
            assert_eq!(stats[0].cost[ch] == 0.0, v == 0.0, "channel {ch}: cost {} with variance {v}", stats[0].cost[ch]);
        }
        // Channel 1 (mean -1, no spread) is off after the Relu; channel 4 is constant 1.
        assert_eq!(stats[0].mean[1], 0.0);
        assert!((stats[0].mean[4] - 1.0).abs() < 1e-12);
        let without = measure(&graph, &sets, &Priors::new(), &|| {}).unwrap();
        assert_ne!(without[0].mean, stats[0].mean);
        assert_eq!(blocks_with_priors(&graph, &Priors::new()), (0, 1));
    }

    /// Reordering is exact; the dead channels cost nothing, go last, and a width without
    /// them computes the same output through its compensated bias.
    #[test]
    fn order_is_exact_and_dead_channels_compensate_exactly() {
        let mut graph = block();
        let sets: Vec<_> = (0..4).map(|i| input(i as f32)).collect();
        let want: Vec<Vec<f32>> = sets.iter().map(|s| run(&graph, s)).collect();
        let mut stats = measure(&graph, &sets, &Priors::new(), &|| {}).unwrap();
        assert_eq!(stats.len(), 1);
        assert_eq!(stats[0].cost.iter().filter(|&&c| c == 0.0).count(), 3, "{:?}", stats[0].cost);
        order_channels(&mut graph, &mut stats).unwrap();
        assert!(stats[0].cost[..3].iter().all(|&c| c > 0.0) && stats[0].cost[3..].iter().all(|&c| c == 0.0));
        for (s, w) in sets.iter().zip(&want) {
            run(&graph, s).iter().zip(w).for_each(|(a, b)| assert!((a - b).abs() < 1e-5, "{a} vs {b}"));
        }
        let plan = plan(&mut graph, &stats, &[(0.6, vec![3])]).unwrap();
        assert_eq!(plan.widths[0].keep, vec![3]);
        let narrow_graph = narrow(&graph, &plan, 0).unwrap();
        assert_eq!(narrow_graph.initializers["wp"].shape(), &[2, 3, 1, 1]);
        for (s, w) in sets.iter().zip(&want) {
            run(&narrow_graph, s).iter().zip(w).for_each(|(a, b)| assert!((a - b).abs() < 1e-4, "{a} vs {b}"));
        }
        assert!(plan.widths[0].macs > 0);
    }
}
