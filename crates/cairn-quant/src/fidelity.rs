//! How closely a candidate model follows a reference on the same inputs: top-1 and
//! top-5 agreement (on all inputs and on decisive ones, where the reference's softmax
//! top-1 minus top-2 is at least [`DECISIVE_MARGIN`]; see DESIGN.md "Measuring
//! fidelity"), mean KL divergence, cosine similarity, and accuracy against labels.

/// Softmax margin at or above which a reference answer counts as decisive.
pub const DECISIVE_MARGIN: f64 = 0.1;

#[derive(Clone, Debug, Default)]
pub struct Agreement {
    pub inputs: usize,
    pub top1: usize,
    pub top5: usize,
    pub decisive: usize,
    pub decisive_top1: usize,
    pub kl_sum: f64,
    pub cosine_sum: f64,
    pub labeled: usize,
    pub reference_correct: usize,
    pub candidate_correct: usize,
}

impl Agreement {
    /// Adds one input's outputs (logits or probabilities; softmax is applied) and its label.
    pub fn add(&mut self, reference: &[f32], candidate: &[f32], label: Option<usize>) {
        let (p, q) = (softmax(reference), softmax(candidate));
        let (r1, c1) = (argmax(reference), argmax(candidate));
        self.inputs += 1;
        self.top1 += (r1 == c1) as usize;
        self.top5 += top_k(candidate, 5).contains(&r1) as usize;
        if margin(&p) >= DECISIVE_MARGIN {
            self.decisive += 1;
            self.decisive_top1 += (r1 == c1) as usize;
        }
        self.kl_sum += p.iter().zip(&q).filter(|(a, _)| **a > 0.0).map(|(a, b)| a * (a / b.max(1e-30)).ln()).sum::<f64>();
        self.cosine_sum += cosine(reference, candidate);
        if let Some(l) = label {
            self.labeled += 1;
            self.reference_correct += (r1 == l) as usize;
            self.candidate_correct += (c1 == l) as usize;
        }
    }
    pub fn rate(n: usize, of: usize) -> f64 {
        if of == 0 {
            f64::NAN
        } else {
            n as f64 / of as f64
        }
    }
    pub fn mean_kl(&self) -> f64 {
        self.kl_sum / self.inputs.max(1) as f64
    }
    pub fn mean_cosine(&self) -> f64 {
        self.cosine_sum / self.inputs.max(1) as f64
    }
}

pub fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum();
    let na: f64 = a.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    if na == 0.0 || nb == 0.0 {
        return if na == nb { 1.0 } else { 0.0 };
    }
    dot / (na * nb)
}

pub fn softmax(v: &[f32]) -> Vec<f64> {
    let max = v.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x)) as f64;
    let e: Vec<f64> = v.iter().map(|&x| (x as f64 - max).exp()).collect();
    let sum: f64 = e.iter().sum();
    e.into_iter().map(|x| x / sum).collect()
}

fn margin(p: &[f64]) -> f64 {
    let (mut first, mut second) = (0f64, 0f64);
    for &x in p {
        if x > first {
            second = first;
            first = x;
        } else if x > second {
            second = x;
        }
    }
    first - second
}

pub fn argmax(v: &[f32]) -> usize {
    v.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).map_or(0, |(i, _)| i)
}

fn top_k(v: &[f32], k: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..v.len()).collect();
    idx.sort_by(|&a, &b| v[b].total_cmp(&v[a]));
    idx.truncate(k);
    idx
}

/// Relative error of a tensor: max |a - b| / max |a|.
pub fn relative_error(reference: &[f32], candidate: &[f32]) -> f64 {
    let scale = reference.iter().fold(0f32, |m, v| m.max(v.abs())).max(f32::MIN_POSITIVE) as f64;
    reference.iter().zip(candidate).fold(0f64, |m, (a, b)| m.max((a - b).abs() as f64)) / scale
}
