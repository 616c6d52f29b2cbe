//! The statistics behind a study's verdicts (SPEC 8): the one module of the report that tests,
//! permutes or draws at random. Every verdict is two one-sided tests at level `ALPHA` = 2.5%
//! against the claim's margin: "supported" when the data reject the opposite side, "contradicted"
//! when they reject the claimed side. So a claim with no true effect gets a verdict at most 5% of
//! the time, whatever the number of seeds; `simulate` measures it, and the tests hold it.
//!
//! Why these tests and not the percentile bootstrap of the first version: over 3-15 seeds the
//! bootstrap's intervals are too narrow (21% false verdicts on null data at 3 seeds, 12% at 5), and
//! a resample of 3 seeds has no spread 11% of the time. Instead:
//! - a difference of two groups' means: Welch's t (unequal variances; the interval is exact for
//!   normal seeds and measured here for the rest);
//! - paired per-seed differences (the same seed's two scores, two groups started from one
//!   checkpoint, a per-run statistic against 0): the exact sign-flip permutation test, whose
//!   interval is the set of margins it does not reject (no assumption beyond symmetry; below 6
//!   seeds it can never reject at 2.5%, so it never claims anything there);
//! - a difference of the groups' minima or spreads, and a rank correlation: permutation tests of
//!   that very statistic (exact by enumeration when the permutations are few, else 10,000 seeded
//!   draws), with no interval.
//!
//! Each method has a minimum number of seeds (`Method::min_seeds`), the fewest at which it finds
//! its planted effect (`Method::planted`) at least 80% of the time; below it a verdict is "too few
//! seeds" (the power table is in SPEC 8 and comes from `simulate`).
use crate::rng::{self, Stream};
use rand::Rng;
use rand::seq::SliceRandom;
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};
use statrs::distribution::{ContinuousCDF, StudentsT};

/// The level of each one-sided test.
pub const ALPHA: f64 = 0.025;
/// Permutation tests enumerate every permutation up to this many, and draw `DRAWS` beyond.
const EXACT_MAX: usize = 1 << 16;
/// Random permutations of a test too large to enumerate.
const DRAWS: usize = 10_000;

/// n, mean, unbiased standard deviation (None below 2 values), min and max.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Stats {
    pub n: usize,
    pub mean: f64,
    pub std: Option<f64>,
    pub min: f64,
    pub max: f64,
}

impl Stats {
    /// None for no values (a cell the study has no data for).
    pub fn of(x: &[f64]) -> Option<Stats> {
        (!x.is_empty()).then(|| Stats {
            n: x.len(),
            mean: mean(x),
            std: std(x),
            min: x.iter().copied().fold(f64::INFINITY, f64::min),
            max: x.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        })
    }
}

/// The mean, summed in order (NaN for no values).
pub fn mean(x: &[f64]) -> f64 {
    x.iter().sum::<f64>() / x.len() as f64
}

/// The unbiased variance about the mean (two passes: no cancellation); None below 2 values.
pub fn variance(x: &[f64]) -> Option<f64> {
    let m = mean(x);
    (x.len() > 1).then(|| x.iter().map(|v| (v - m).powi(2)).sum::<f64>() / (x.len() - 1) as f64)
}

/// The unbiased standard deviation; None below 2 values.
pub fn std(x: &[f64]) -> Option<f64> {
    variance(x).map(f64::sqrt)
}

/// Ranks of `x` from 1, ties given their average rank (as scipy.stats.rankdata).
fn ranks(x: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..x.len()).collect();
    order.sort_by(|&a, &b| x[a].total_cmp(&x[b]));
    let mut r = vec![0.0; x.len()];
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && x[order[j + 1]] == x[order[i]] {
            j += 1;
        }
        for &k in &order[i..=j] {
            r[k] = (i + j) as f64 / 2.0 + 1.0;
        }
        i = j + 1;
    }
    r
}

/// Pearson's correlation; None when a side is constant.
fn pearson(x: &[f64], y: &[f64]) -> Option<f64> {
    let (mx, my) = (mean(x), mean(y));
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (a, b) in x.iter().zip(y) {
        sxy += (a - mx) * (b - my);
        sxx += (a - mx).powi(2);
        syy += (b - my).powi(2);
    }
    (sxx > 0.0 && syy > 0.0).then(|| sxy / (sxx * syy).sqrt())
}

/// Spearman's rank correlation of paired values (Pearson's on average ranks, as
/// scipy.stats.spearmanr); None for fewer than 3 pairs, unequal lengths, or a constant side.
pub fn spearman(x: &[f64], y: &[f64]) -> Option<f64> {
    if x.len() != y.len() || x.len() < 3 {
        return None;
    }
    pearson(&ranks(x), &ranks(y))
}

/// How a comparison was tested.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// Difference of two groups' means, Welch's t.
    Welch,
    /// Mean of paired per-seed differences, exact sign-flip permutation test.
    SignFlip,
    /// Difference of two groups' minima, permutation test.
    MinPermutation,
    /// Spread of one group against another's (about their own means), permutation test.
    StdPermutation,
    /// Spearman's rank correlation against none, permutation test.
    RankPermutation,
}

/// The kinds of claim, in `Method` order (tables and tests walk it).
pub const METHODS: [Method; 5] = [
    Method::Welch,
    Method::SignFlip,
    Method::MinPermutation,
    Method::StdPermutation,
    Method::RankPermutation,
];

/// The effect a method's minimum number of seeds is sized for (`simulate` plants it).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Effect {
    /// Group a (or the paired difference) shifted by this many standard deviations.
    Shift(f64),
    /// Group b's standard deviation this many times group a's.
    SpreadRatio(f64),
    /// Pairs drawn with this correlation.
    Correlation(f64),
}

impl Method {
    pub fn name(self) -> &'static str {
        match self {
            Method::Welch => "Welch t",
            Method::SignFlip => "exact sign-flip",
            Method::MinPermutation => "permutation of min",
            Method::StdPermutation => "permutation of std",
            Method::RankPermutation => "permutation of rank correlation",
        }
    }

    /// The effect its minimum number of seeds is sized for: location claims a shift of 2
    /// standard deviations, spreads a 3x ratio, a relation a rank correlation of 0.8.
    pub fn planted(self) -> Effect {
        match self {
            Method::Welch | Method::SignFlip | Method::MinPermutation => Effect::Shift(2.0),
            Method::StdPermutation => Effect::SpreadRatio(3.0),
            Method::RankPermutation => Effect::Correlation(0.8),
        }
    }

    /// The fewest seeds per group at which its verdicts are given: the smallest n at which
    /// `simulate` finds the planted effect at least 80% of the time (held by a test; the power
    /// table is in SPEC 8).
    pub fn min_seeds(self) -> usize {
        match self {
            Method::Welch => 6,
            Method::SignFlip => 6,
            Method::MinPermutation => 10,
            Method::StdPermutation => 11,
            Method::RankPermutation => 11,
        }
    }
}

/// One comparison tested: the estimate (difference, or a correlation), its 95% interval where the
/// method gives one, and the one-sided p-values of "the true value is above the margin" (small =
/// evidence it is) and "below".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Test {
    pub method: Method,
    /// Values in each group (one group for paired tests and correlations: `[n, n]`).
    pub n: [usize; 2],
    pub estimate: f64,
    /// The 95% interval (two-sided; each end a one-sided 2.5% bound); None where the method gives
    /// none or it is unbounded (a sign-flip test below 6 values).
    pub interval: Option<[f64; 2]>,
    pub p_above: f64,
    pub p_below: f64,
}

/// Which side of the margin a claim puts the true value on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    Above,
    Below,
    /// No relation (C12): only a significant relation can speak against it.
    Neither,
}

/// What the data say of a claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    Supported,
    Contradicted,
    Inconclusive,
    /// A claim of no relation where the test found none (never "supported": an absent relation
    /// is not shown by a wide interval).
    NotContradicted,
}

impl Test {
    /// The decision for a claim on `side` of the margin the test was made against.
    pub fn decide(&self, side: Side) -> Decision {
        let (claimed, other) = match side {
            Side::Above => (self.p_above, self.p_below),
            Side::Below => (self.p_below, self.p_above),
            Side::Neither => {
                return if self.p_above.min(self.p_below) <= ALPHA {
                    Decision::Contradicted
                } else {
                    Decision::NotContradicted
                };
            }
        };
        if claimed <= ALPHA {
            Decision::Supported
        } else if other <= ALPHA {
            Decision::Contradicted
        } else {
            Decision::Inconclusive
        }
    }

    /// The p-value of the claimed side (for display).
    pub fn p(&self, side: Side) -> f64 {
        match side {
            Side::Above => self.p_above,
            Side::Below => self.p_below,
            Side::Neither => (2.0 * self.p_above.min(self.p_below)).min(1.0),
        }
    }
}

/// mean(a) - mean(b) against `margin` by Welch's t; None below 2 values in a group.
pub fn welch(a: &[f64], b: &[f64], margin: f64) -> Option<Test> {
    let (va, vb) = (variance(a)?, variance(b)?);
    let (na, nb) = (a.len() as f64, b.len() as f64);
    let d = mean(a) - mean(b);
    let (sa, sb) = (va / na, vb / nb);
    let se = (sa + sb).sqrt();
    let test = |interval, p_above, p_below| Test {
        method: Method::Welch,
        n: [a.len(), b.len()],
        estimate: d,
        interval: Some(interval),
        p_above,
        p_below,
    };
    if se == 0.0 {
        // Both groups constant: the difference is known exactly.
        let (above, below) = (d > margin, d < margin);
        return Some(test(
            [d, d],
            if above { 0.0 } else { 1.0 },
            if below { 0.0 } else { 1.0 },
        ));
    }
    // Welch-Satterthwaite degrees of freedom.
    let df = (sa + sb).powi(2) / (sa * sa / (na - 1.0) + sb * sb / (nb - 1.0));
    let t = StudentsT::new(0.0, 1.0, df).expect("positive degrees of freedom");
    let q = t.inverse_cdf(1.0 - ALPHA);
    let z = (d - margin) / se;
    Some(test([d - q * se, d + q * se], t.sf(z), t.cdf(z)))
}

/// The mean of paired differences `d` against `margin` by the exact sign-flip test: under the
/// null the differences about the margin are symmetric, so every pattern of signs is equally
/// likely. With F the set of flipped signs, the one-sided p-value of "above" is
/// #{F : sum over F of (d_i - margin) <= 0} / 2^n; inverting it gives the interval: its lower end
/// is the (floor(ALPHA 2^n))-th smallest mean of a non-empty subset of `d` (unbounded while that
/// is 0: fewer than 6 values). Exact up to 16 values, 10,000 seeded random sign patterns beyond.
pub fn sign_flip(d: &[f64], margin: f64, seed: u64) -> Option<Test> {
    let n = d.len();
    if n == 0 {
        return None;
    }
    // Sums and sizes of the subsets F (the empty one first).
    let subsets: Vec<(f64, usize)> = if n <= 16 {
        let mut s = vec![(0.0, 0usize); 1 << n];
        for mask in 1usize..(1 << n) {
            let low = mask.trailing_zeros() as usize;
            let (sum, size) = s[mask & (mask - 1)];
            s[mask] = (sum + d[low], size + 1);
        }
        s
    } else {
        let mut rng = rng::rng(seed, Stream::Resampling);
        std::iter::once((0.0, 0))
            .chain((0..DRAWS).map(|_| {
                d.iter().fold((0.0, 0), |(sum, size), &v| {
                    if rng.random::<bool>() {
                        (sum + v, size + 1)
                    } else {
                        (sum, size)
                    }
                })
            }))
            .collect()
    };
    let total = subsets.len() as f64;
    let shifted = |(sum, size): &(f64, usize)| sum - margin * *size as f64;
    let p_above = subsets.iter().filter(|s| shifted(s) <= 0.0).count() as f64 / total;
    let p_below = subsets.iter().filter(|s| shifted(s) >= 0.0).count() as f64 / total;
    let mut means: Vec<f64> = subsets
        .iter()
        .filter(|s| s.1 > 0)
        .map(|(sum, size)| sum / *size as f64)
        .collect();
    means.sort_by(f64::total_cmp);
    let k = (ALPHA * total).floor() as usize;
    let interval = (k >= 1).then(|| [means[k - 1], means[means.len() - k]]);
    Some(Test {
        method: Method::SignFlip,
        n: [n, n],
        estimate: mean(d),
        interval,
        p_above,
        p_below,
    })
}

/// The k-element subsets of 0..n, in lexicographic order, as index lists (`f` sees each).
fn for_each_combination(n: usize, k: usize, mut f: impl FnMut(&[usize])) {
    let mut idx: Vec<usize> = (0..k).collect();
    loop {
        f(&idx);
        let Some(i) = (0..k).rev().find(|&i| idx[i] != i + n - k) else {
            return;
        };
        idx[i] += 1;
        for j in i + 1..k {
            idx[j] = idx[j - 1] + 1;
        }
    }
}

/// n choose k, saturating.
fn choose(n: usize, k: usize) -> usize {
    (0..k.min(n - k)).fold(1usize, |c, i| c.saturating_mul(n - i) / (i + 1))
}

/// The one-sided p-values of statistic `stat(a, b)` against its distribution over every split
/// of the pooled values into groups of a's and b's sizes (exact up to `EXACT_MAX` splits, else
/// the observed split and `DRAWS` seeded random ones).
fn two_sample_permutation(
    a: &[f64],
    b: &[f64],
    stat: impl Fn(&[f64], &[f64]) -> f64,
    seed: u64,
) -> (f64, f64) {
    let pooled: Vec<f64> = a.iter().chain(b).copied().collect();
    let (n, k) = (pooled.len(), a.len());
    let observed = stat(a, b);
    // Ties: a permuted value within rounding of the observed one counts on both sides.
    let tol = 1e-12 * observed.abs().max(1e-300);
    let (mut above, mut below, mut total) = (0usize, 0usize, 0usize);
    let mut count = |t: f64| {
        above += (t >= observed - tol) as usize;
        below += (t <= observed + tol) as usize;
        total += 1;
    };
    let (mut ga, mut gb) = (Vec::with_capacity(k), Vec::with_capacity(n - k));
    if choose(n, k) <= EXACT_MAX {
        for_each_combination(n, k, |idx| {
            ga.clear();
            gb.clear();
            let mut next = 0;
            for (i, &v) in pooled.iter().enumerate() {
                if next < k && idx[next] == i {
                    ga.push(v);
                    next += 1;
                } else {
                    gb.push(v);
                }
            }
            count(stat(&ga, &gb));
        });
    } else {
        count(observed);
        let mut rng = rng::rng(seed, Stream::Resampling);
        let mut z = pooled.clone();
        for _ in 0..DRAWS {
            z.shuffle(&mut rng);
            count(stat(&z[..k], &z[k..]));
        }
    }
    (above as f64 / total as f64, below as f64 / total as f64)
}

fn minimum(x: &[f64]) -> f64 {
    x.iter().copied().fold(f64::INFINITY, f64::min)
}

/// min(a) - min(b) (the groups' worst seeds), by a permutation test of that difference; no
/// interval. None when a group is empty.
pub fn min_difference(a: &[f64], b: &[f64], seed: u64) -> Option<Test> {
    if a.is_empty() || b.is_empty() {
        return None;
    }
    let (p_above, p_below) = two_sample_permutation(a, b, |x, y| minimum(x) - minimum(y), seed);
    Some(Test {
        method: Method::MinPermutation,
        n: [a.len(), b.len()],
        estimate: minimum(a) - minimum(b),
        interval: None,
        p_above,
        p_below,
    })
}

/// std(a) - std(b), by a permutation test of var(a) / (var(a) + var(b)) over the values centred
/// on their own group's mean (a spread test that ignores a difference of means); no interval.
/// None below 2 values in a group.
pub fn std_difference(a: &[f64], b: &[f64], seed: u64) -> Option<Test> {
    let estimate = std(a)? - std(b)?;
    let centre = |x: &[f64]| -> Vec<f64> {
        let m = mean(x);
        x.iter().map(|v| v - m).collect()
    };
    let share = |x: &[f64], y: &[f64]| {
        let (vx, vy) = (variance(x).unwrap_or(0.0), variance(y).unwrap_or(0.0));
        if vx + vy > 0.0 { vx / (vx + vy) } else { 0.5 }
    };
    let (p_above, p_below) = two_sample_permutation(&centre(a), &centre(b), share, seed);
    Some(Test {
        method: Method::StdPermutation,
        n: [a.len(), b.len()],
        estimate,
        interval: None,
        p_above,
        p_below,
    })
}

/// Spearman's rho of pairs (x_i, y_i) against no relation, by permuting y (every ordering up to 8
/// pairs, else 10,000 seeded draws); no interval. None when rho is undefined.
pub fn rank_correlation(x: &[f64], y: &[f64], seed: u64) -> Option<Test> {
    let rho = spearman(x, y)?;
    let (rx, mut ry) = (ranks(x), ranks(y));
    let tol = 1e-12;
    let (mut above, mut below, mut total) = (0usize, 0usize, 0usize);
    let mut count = |r: f64| {
        above += (r >= rho - tol) as usize;
        below += (r <= rho + tol) as usize;
        total += 1;
    };
    let n = x.len();
    if (1..=n)
        .try_fold(1usize, |f, i| f.checked_mul(i))
        .is_some_and(|f| f <= EXACT_MAX)
    {
        // Heap's algorithm: every ordering of ry once.
        let mut c = vec![0usize; n];
        count(pearson(&rx, &ry).expect("ranks are not constant"));
        let mut i = 0;
        while i < n {
            if c[i] < i {
                ry.swap(if i % 2 == 0 { 0 } else { c[i] }, i);
                count(pearson(&rx, &ry).expect("ranks are not constant"));
                c[i] += 1;
                i = 0;
            } else {
                c[i] = 0;
                i += 1;
            }
        }
    } else {
        count(rho);
        let mut rng = rng::rng(seed, Stream::Resampling);
        for _ in 0..DRAWS {
            ry.shuffle(&mut rng);
            count(pearson(&rx, &ry).expect("ranks are not constant"));
        }
    }
    Some(Test {
        method: Method::RankPermutation,
        n: [n, n],
        estimate: rho,
        interval: None,
        p_above: above as f64 / total as f64,
        p_below: below as f64 / total as f64,
    })
}

/// Seeds an equivalence test would need to show a relation weak (|rho| < `bound`) with 80%
/// power when there is none: two one-sided 2.5% tests on Fisher's z of Spearman's rho, whose
/// standard error is about sqrt(1.06 / (n - 3)) (Fieller, Hartley and Pearson 1957), so n =
/// 3 + 1.06 ((z_0.975 + z_0.90) / atanh(bound))^2.
pub fn equivalence_seeds(bound: f64) -> usize {
    // z_0.975 = 1.959964, z_0.90 = 1.281552.
    let k = (1.959964 + 1.281552) / bound.atanh();
    3 + (1.06 * k * k).ceil() as usize
}

/// How often a method's verdict came out each way over simulated studies.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rates {
    pub supported: f64,
    pub contradicted: f64,
}

/// Simulates `sims` studies of `n` seeds per group with `effect` planted (seeded) and tests each
/// with `method` against margin 0; the claim is "a above b" (location), "a's spread below b's"
/// (spreads) or, for a correlation, a relation ("contradicted" of C12 counts as found: the
/// `supported` rate here). Seeds are standard normal; a null effect keeps what the method must
/// ignore: unequal spreads (3x) for Welch, unequal means (2 standard deviations) for spreads.
pub fn simulate(method: Method, n: usize, effect: Effect, sims: usize, seed: u64) -> Rates {
    let mut rng = rng::rng(seed, Stream::Resampling);
    let mut normal = |k: usize, loc: f64, scale: f64| -> Vec<f64> {
        (0..k)
            .map(|_| {
                let z: f64 = StandardNormal.sample(&mut rng);
                loc + scale * z
            })
            .collect::<Vec<f64>>()
    };
    let (mut yes, mut no) = (0usize, 0usize);
    for s in 0..sims {
        let test_seed = seed.wrapping_add(s as u64);
        let (test, side) = match (method, effect) {
            (Method::Welch, Effect::Shift(d)) => {
                let b_scale = if d == 0.0 { 3.0 } else { 1.0 };
                let (a, b) = (normal(n, d, 1.0), normal(n, 0.0, b_scale));
                (welch(&a, &b, 0.0), Side::Above)
            }
            (Method::SignFlip, Effect::Shift(d)) => {
                (sign_flip(&normal(n, d, 1.0), 0.0, test_seed), Side::Above)
            }
            (Method::MinPermutation, Effect::Shift(d)) => {
                let (a, b) = (normal(n, d, 1.0), normal(n, 0.0, 1.0));
                (min_difference(&a, &b, test_seed), Side::Above)
            }
            (Method::StdPermutation, Effect::SpreadRatio(r)) => {
                let b_loc = if r == 1.0 { 2.0 } else { 0.0 };
                let (a, b) = (normal(n, 0.0, 1.0), normal(n, b_loc, r));
                (std_difference(&a, &b, test_seed), Side::Below)
            }
            (Method::RankPermutation, Effect::Correlation(r)) => {
                let x = normal(n, 0.0, 1.0);
                let e = normal(n, 0.0, 1.0);
                let y: Vec<f64> = x
                    .iter()
                    .zip(&e)
                    .map(|(x, e)| r * x + (1.0 - r * r).sqrt() * e)
                    .collect();
                let test = rank_correlation(&x, &y, test_seed);
                let found = test
                    .as_ref()
                    .is_some_and(|t| t.decide(Side::Neither) == Decision::Contradicted);
                yes += found as usize;
                continue;
            }
            (m, e) => panic!("{m:?} is not simulated with {e:?}"),
        };
        match test.map(|t| t.decide(side)) {
            Some(Decision::Supported) => yes += 1,
            Some(Decision::Contradicted) => no += 1,
            _ => {}
        }
    }
    Rates {
        supported: yes as f64 / sims as f64,
        contradicted: no as f64 / sims as f64,
    }
}

/// The null effect of a method (no true difference or relation).
pub fn null(method: Method) -> Effect {
    match method.planted() {
        Effect::Shift(_) => Effect::Shift(0.0),
        Effect::SpreadRatio(_) => Effect::SpreadRatio(1.0),
        Effect::Correlation(_) => Effect::Correlation(0.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_statistics_by_hand() {
        // 0.90, 0.94, 0.95: mean 0.93; squared deviations 9e-4 + 1e-4 + 4e-4; variance 7e-4.
        let s = Stats::of(&[0.90, 0.94, 0.95]).unwrap();
        assert!((s.mean - 0.93).abs() < 1e-15);
        assert!((s.std.unwrap() - 7e-4f64.sqrt()).abs() < 1e-15);
        assert_eq!((s.n, s.min, s.max), (3, 0.90, 0.95));
        assert_eq!(Stats::of(&[0.8]).unwrap().std, None);
        assert!(Stats::of(&[]).is_none());
    }

    #[test]
    fn spearman_matches_scipy() {
        // scipy.stats.spearmanr([1, 2, 3, 4, 5], [5, 6, 7, 8, 7]) = 0.8207826816681233 (ties in
        // y get the average rank 3.5).
        let r = spearman(&[1.0, 2.0, 3.0, 4.0, 5.0], &[5.0, 6.0, 7.0, 8.0, 7.0]).unwrap();
        assert!((r - 0.8207826816681233).abs() < 1e-12, "{r}");
        assert_eq!(spearman(&[1.0, 2.0, 3.0], &[3.0, 2.0, 1.0]), Some(-1.0));
        assert_eq!(ranks(&[2.0, 1.0, 2.0, 3.0]), vec![2.5, 1.0, 2.5, 4.0]);
        assert_eq!(spearman(&[1.0, 2.0, 3.0], &[1.0, 1.0, 1.0]), None);
        assert_eq!(spearman(&[1.0, 2.0], &[1.0, 2.0]), None);
        assert_eq!(spearman(&[], &[]), None);
    }

    #[test]
    fn welch_matches_scipy() {
        // scipy 1.x: ttest_ind(a, b, equal_var=False, alternative='greater') -> p 0.0025132124587822096,
        // t 3.861077946921752, df 7.810581167348628; confidence_interval(0.95) ->
        // [0.01574221558478371, 0.06292445108188273]; against a margin of -0.01 ('less' on a + 0.01):
        // p 0.9993129741403973.
        let a = [0.95, 0.96, 0.97, 0.96, 0.94];
        let b = [0.90, 0.93, 0.91, 0.95, 0.89, 0.92];
        let t = welch(&a, &b, 0.0).unwrap();
        assert!((t.p_above - 0.0025132124587822096).abs() < 1e-10, "{t:?}");
        assert!((t.p_above + t.p_below - 1.0).abs() < 1e-12);
        let [lo, hi] = t.interval.unwrap();
        assert!(
            (lo - 0.01574221558478371).abs() < 1e-10 && (hi - 0.06292445108188273).abs() < 1e-10
        );
        assert_eq!(t.decide(Side::Above), Decision::Supported);
        assert_eq!(t.decide(Side::Below), Decision::Contradicted);
        let m = welch(&a, &b, -0.01).unwrap();
        assert!((m.p_below - 0.9993129741403973).abs() < 1e-10, "{m:?}");
        // Both groups constant: the difference is exact.
        let c = welch(&[1.0, 1.0], &[0.5, 0.5], 0.2).unwrap();
        assert_eq!(
            (c.p_above, c.p_below, c.interval),
            (0.0, 1.0, Some([0.5, 0.5]))
        );
        assert!(welch(&[1.0], &b, 0.0).is_none());
    }

    #[test]
    fn sign_flip_by_hand() {
        // Three positive differences: only the empty flip set has a sum <= 0, p = 1/8 > 2.5%, and
        // with 8 sign patterns no interval is bounded.
        let t = sign_flip(&[1.0, 2.0, 3.0], 0.0, 0).unwrap();
        assert_eq!((t.p_above, t.p_below, t.interval), (0.125, 1.0, None));
        assert_eq!(t.decide(Side::Above), Decision::Inconclusive);
        // Six: p = 1/64; the interval's ends are the smallest and largest subset means (single
        // values here), so "above 0.99" is supported and "above 1.5" is not (about 1.5 the
        // differences are -0.5, 0.5, 1.5, ...: flipping -0.5, or -0.5 and 0.5, gives two more sums
        // <= 0: p = 3/64).
        let d = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let t = sign_flip(&d, 0.0, 0).unwrap();
        assert_eq!((t.p_above, t.interval), (1.0 / 64.0, Some([1.0, 6.0])));
        assert_eq!(t.decide(Side::Above), Decision::Supported);
        assert_eq!(
            sign_flip(&d, 0.99, 0).unwrap().decide(Side::Above),
            Decision::Supported
        );
        let t = sign_flip(&d, 1.5, 0).unwrap();
        assert_eq!(t.p_above, 3.0 / 64.0);
        assert_eq!(t.decide(Side::Above), Decision::Inconclusive);
        // Beyond 16 values: 10,000 seeded draws, the same twice.
        let many: Vec<f64> = (0..20).map(|i| f64::from(i) - 5.0).collect();
        assert_eq!(sign_flip(&many, 0.0, 3), sign_flip(&many, 0.0, 3));
        assert!(sign_flip(&[], 0.0, 0).is_none());
    }

    #[test]
    fn permutation_tests_by_hand() {
        // a = {3, 4}, b = {1, 2}: of the 6 splits of {1, 2, 3, 4}, min(A) - min(B) is 2, -1, 1,
        // -1, 1, -2: only the observed one reaches 2.
        let t = min_difference(&[3.0, 4.0], &[1.0, 2.0], 0).unwrap();
        assert_eq!((t.estimate, t.p_above, t.p_below), (2.0, 1.0 / 6.0, 1.0));
        // Spreads about each group's mean: a = {1, -1}, b = {10, -10}. var(A) / (var(A) + var(B))
        // over the 6 splits: 2/202, 1/2 four times, 200/202: the observed is the lowest.
        let t = std_difference(&[1.0, -1.0], &[10.0, -10.0], 0).unwrap();
        assert_eq!((t.p_below, t.p_above), (1.0 / 6.0, 1.0));
        assert!((t.estimate - (2f64.sqrt() - 200f64.sqrt())).abs() < 1e-12);
        // A shift of means alone is not a difference of spread.
        let t = std_difference(&[0.0, 1.0, 2.0], &[100.0, 101.0, 102.0], 0).unwrap();
        assert_eq!(t.estimate, 0.0);
        assert!(t.p_above >= 0.5 && t.p_below >= 0.5, "{t:?}");
        assert_eq!(t.decide(Side::Below), Decision::Inconclusive);
        // Spearman: every ordering of y (scipy brute force over the 120: 8 reach 0.8208).
        let t =
            rank_correlation(&[1.0, 2.0, 3.0, 4.0, 5.0], &[5.0, 6.0, 7.0, 8.0, 7.0], 0).unwrap();
        assert!((t.p_above - 8.0 / 120.0).abs() < 1e-15, "{t:?}");
        assert_eq!(t.decide(Side::Neither), Decision::NotContradicted);
        assert!(rank_correlation(&[1.0, 2.0], &[1.0, 2.0], 0).is_none());
        assert!(min_difference(&[], &[1.0], 0).is_none());
        assert!(std_difference(&[1.0], &[1.0, 2.0], 0).is_none());
    }

    #[test]
    fn equivalence_seeds_by_formula() {
        // 3 + 1.06 ((1.959964 + 1.281552) / atanh(0.5))^2 = 3 + 1.06 x 34.84 = 39.9 -> 40.
        assert_eq!(equivalence_seeds(0.5), 40);
    }
}
