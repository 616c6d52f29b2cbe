//! Softmax-family scores (DDU baselines; SPEC 4), from logits, optionally temperature-scaled.
//! All are ID-confidence (higher = more in-distribution):
//! - msp: max_c softmax(l / T)_c (Hendrycks & Gimpel 2017)
//! - max logit: max_c l_c (Hendrycks et al. 2022), unaffected by T
//! - negative entropy: sum_c p_c log p_c of softmax(l / T)
//! - energy: T logsumexp(l / T) (Liu et al. 2020; the negative free energy)
//!
//! Each is computed from (l - max_c l_c) / T, whose entries are <= 0 with the largest exactly 0:
//! softmax, log-softmax and logsumexp of it are finite for any finite logits and temperature,
//! where l / T alone overflows (logits of 1e300 at T = 1e-8, or T = 1e-308) and gave NaN.
use tch::{Kind, Tensor};

fn to_vec(t: Tensor) -> Vec<f64> {
    Vec::<f64>::try_from(t.to_kind(Kind::Double).contiguous()).expect("f64 vector")
}

/// (l - max_c l_c) / T (N x C, f64) and max_c l_c (N x 1).
fn shifted(logits: &Tensor, t: f64) -> (Tensor, Tensor) {
    let l = logits.to_kind(Kind::Double);
    let max = l.amax(1, true);
    ((l - &max) / t, max)
}

pub fn msp(logits: &Tensor, t: f64) -> Vec<f64> {
    to_vec(shifted(logits, t).0.softmax(1, Kind::Double).amax(1, false))
}

pub fn max_logit(logits: &Tensor) -> Vec<f64> {
    to_vec(logits.to_kind(Kind::Double).amax(1, false))
}

pub fn neg_entropy(logits: &Tensor, t: f64) -> Vec<f64> {
    // A probability that underflows to 0 has log -inf; clamped to the most negative finite value
    // its term p log p is 0 * finite = 0, as its limit is, instead of 0 * -inf = NaN.
    let logp = shifted(logits, t)
        .0
        .log_softmax(1, Kind::Double)
        .clamp_min(f64::MIN);
    to_vec((logp.exp() * &logp).sum_dim_intlist(1, false, Kind::Double))
}

/// T logsumexp(l / T) = max_c l_c + T logsumexp((l - max_c l_c) / T).
pub fn energy(logits: &Tensor, t: f64) -> Vec<f64> {
    let (z, max) = shifted(logits, t);
    to_vec(max.squeeze_dim(1) + z.logsumexp(1, false) * t)
}

/// Mean negative log-likelihood of `labels` under softmax(logits / t).
pub fn nll(logits: &Tensor, labels: &Tensor, t: f64) -> f64 {
    let logp = (logits.to_kind(Kind::Double) / t).log_softmax(1, Kind::Double);
    -f64::try_from(
        logp.gather(1, &labels.unsqueeze(1), false)
            .mean(Kind::Double),
    )
    .expect("scalar")
}

/// The temperature in 0.1, 0.2, ..., 10.0 minimising validation NLL (the smallest on ties).
pub fn fit_temperature(val_logits: &Tensor, val_labels: &Tensor) -> f64 {
    (1..=100)
        .map(|k| k as f64 / 10.0)
        .map(|t| (t, nll(val_logits, val_labels, t)))
        .fold(
            (1.0, f64::INFINITY),
            |best, (t, v)| if v < best.1 { (t, v) } else { best },
        )
        .0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_match_direct_formulas() {
        let l = Tensor::from_slice(&[1.0f64, 2.0, 3.0, 0.0, 0.0, 0.0]).view([2, 3]);
        let z: f64 = [1f64, 2.0, 3.0].iter().map(|v| v.exp()).sum();
        let p: Vec<f64> = [1f64, 2.0, 3.0].iter().map(|v| v.exp() / z).collect();
        let m = msp(&l, 1.0);
        assert!((m[0] - p[2]).abs() < 1e-12 && (m[1] - 1.0 / 3.0).abs() < 1e-12);
        assert_eq!(max_logit(&l), vec![3.0, 0.0]);
        let h: f64 = p.iter().map(|q| q * q.ln()).sum();
        let e = neg_entropy(&l, 1.0);
        assert!((e[0] - h).abs() < 1e-12 && (e[1] + 3f64.ln()).abs() < 1e-12);
        let en = energy(&l, 2.0);
        let z2: f64 = [0.5f64, 1.0, 1.5].iter().map(|v| v.exp()).sum();
        assert!((en[0] - 2.0 * z2.ln()).abs() < 1e-12);
    }

    #[test]
    fn temperature_search_finds_the_nll_minimum() {
        // Margin-5 logits, 3 of 4 right: NLL(T) = (3 log(1 + e^-a) + log(1 + e^a)) / 4, a = 5 / T,
        // is minimal where sigmoid(a) = 3/4, a = ln 3, T = 5 / ln 3 = 4.55.
        let l = Tensor::from_slice(&[5.0f64, 0.0, 5.0, 0.0, 0.0, 5.0, 0.0, 5.0]).view([4, 2]);
        let y = Tensor::from_slice(&[0i64, 0, 1, 0]);
        let t = fit_temperature(&l, &y);
        assert!((t - 5.0 / 3f64.ln()).abs() <= 0.05 + 1e-9, "{t}");
        for other in [t - 0.1, t + 0.1] {
            assert!(nll(&l, &y, t) <= nll(&l, &y, other));
        }
    }
}
