//! Neural Collapse: exact zeros under perfect collapse, agreement with a direct dense computation,
//! scale invariance of NC1, streaming = one-shot, and NC-loss gradients against finite differences.
use ncood::collapse::{Classifier, measure, nc_loss};
use ncood::features::{FeatureKind, Labels};

fn lab(v: &[i64], c: i64) -> Labels {
    Labels::new(v.to_vec(), Some(c as usize), "test labels").unwrap()
}
use tch::{Device, Kind, Tensor};

const D: (Kind, Device) = (Kind::Double, Device::Cpu);

/// Centred simplex ETF: C unit rows in R^dim with pairwise cosine -1/(C-1).
fn etf(c: i64, dim: i64) -> Tensor {
    let m = Tensor::eye(c, D) - Tensor::full([c, c], 1.0 / c as f64, D);
    let m = &m / m.norm_scalaropt_dim(2, [1], true);
    Tensor::cat(&[m, Tensor::zeros([c, dim - c], D)], 1)
}

#[test]
fn perfect_collapse_gives_zeros() {
    let (c, dim, per) = (4i64, 7i64, 5i64);
    let m = etf(c, dim) * 3.0;
    let offset = Tensor::zeros([dim], D).index_fill(0, &Tensor::from_slice(&[dim - 1]), 2.5); // orthogonal to M
    let labels: Vec<i64> = (0..c * per).map(|i| i % c).collect();
    let h = m.index_select(0, &Tensor::from_slice(&labels)) + &offset;
    let r = measure(
        &h,
        &lab(&labels, c),
        &Classifier::new(&m, Some(&Tensor::zeros([c], D)), "test").unwrap(),
        Some(FeatureKind::Raw),
        6,
    )
    .unwrap();
    for (name, v) in [
        ("nc1", r.nc1.unwrap()),
        ("equinorm_means", r.nc2.equinorm_means),
        ("equinorm_weights", r.nc2.equinorm_weights),
        ("equiangularity_means", r.nc2.equiangularity_means),
        ("equiangularity_weights", r.nc2.equiangularity_weights),
        ("maxangle_means", r.nc2.maxangle_means),
        ("maxangle_weights", r.nc2.maxangle_weights),
        ("nc3", r.nc3),
        ("nc4", r.nc4),
    ] {
        assert!(v.abs() < 1e-12, "{name} = {v}");
    }
    assert_eq!(r.n, 20);
}

/// The SPEC 6 formulas written out directly: dense covariances, an eigendecomposition
/// pseudo-inverse of rank C-1, explicit loops over class pairs.
fn direct(h: &Tensor, labels: &[i64], c: i64, w: &Tensor, b: &Tensor) -> [f64; 9] {
    let n = labels.len() as i64;
    let y = Tensor::from_slice(labels);
    let means = Tensor::stack(
        &(0..c)
            .map(|k| {
                h.index_select(0, &y.eq(k).nonzero().squeeze_dim(1))
                    .mean_dim(0, false, Kind::Double)
            })
            .collect::<Vec<_>>(),
        0,
    );
    let mu_g = means.mean_dim(0, false, Kind::Double);
    let m = &means - &mu_g;
    let centred = h - means.index_select(0, &y);
    let sw = centred.tr().mm(&centred) / n as f64;
    let sb = m.tr().mm(&m) / c as f64;
    let (ev, vecs) = sb.linalg_eigh("L");
    let d = ev.size()[0];
    let (ev, vecs) = (
        ev.narrow(0, d - (c - 1), c - 1),
        vecs.narrow(1, d - (c - 1), c - 1),
    );
    let pinv = (&vecs / ev.unsqueeze(0)).mm(&vecs.tr());
    let nc1 = f64::try_from(sw.mm(&pinv).trace()).unwrap() / c as f64;
    let stats = |v: &Tensor| {
        let norms: Vec<f64> = (0..c)
            .map(|k| f64::try_from(v.get(k).norm()).unwrap())
            .collect();
        let mean = norms.iter().sum::<f64>() / c as f64;
        let sd = (norms.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (c - 1) as f64).sqrt();
        let mut cos = vec![];
        for i in 0..c {
            for j in 0..c {
                if i != j {
                    cos.push(
                        f64::try_from(v.get(i).dot(&v.get(j))).unwrap()
                            / (norms[i as usize] * norms[j as usize]),
                    );
                }
            }
        }
        let cm = cos.iter().sum::<f64>() / cos.len() as f64;
        let csd =
            (cos.iter().map(|x| (x - cm).powi(2)).sum::<f64>() / (cos.len() - 1) as f64).sqrt();
        let ma = cos
            .iter()
            .map(|x| (x + 1.0 / (c - 1) as f64).abs())
            .sum::<f64>()
            / cos.len() as f64;
        (sd / mean, csd, ma)
    };
    let (en_m, ea_m, ma_m) = stats(&m);
    let (en_w, ea_w, ma_w) = stats(w);
    let nc3 = f64::try_from((w / w.norm() - &m / m.norm()).square().sum(Kind::Double)).unwrap();
    let pred = (h.mm(&w.tr()) + b).argmax(1, false);
    let mut disagree = 0;
    for i in 0..n {
        let hi = h.get(i);
        let dists: Vec<f64> = (0..c)
            .map(|k| f64::try_from((&hi - means.get(k)).norm()).unwrap())
            .collect();
        let nearest = (0..c as usize)
            .min_by(|&a, &b| dists[a].partial_cmp(&dists[b]).unwrap())
            .unwrap() as i64;
        disagree += (i64::try_from(pred.get(i)).unwrap() != nearest) as usize;
    }
    [
        nc1,
        en_m,
        en_w,
        ea_m,
        ea_w,
        ma_m,
        ma_w,
        nc3,
        disagree as f64 / n as f64,
    ]
}

#[test]
fn random_features_match_direct_computation_and_streaming() {
    tch::manual_seed(3);
    let (c, dim, n) = (5i64, 12i64, 83usize);
    let labels: Vec<i64> = (0..n as i64).map(|i| (i * 7) % c).collect();
    let h = Tensor::randn([n as i64, dim], D)
        + Tensor::randn([c, dim], D).index_select(0, &Tensor::from_slice(&labels)) * 1.5;
    let (w, b) = (Tensor::randn([c, dim], D), Tensor::randn([c], D));
    let labels_c = lab(&labels, c);
    let head = Classifier::new(&w, Some(&b), "test").unwrap();
    let m =
        |h: &Tensor, chunk| measure(h, &labels_c, &head, Some(FeatureKind::Raw), chunk).unwrap();
    let r = m(&h, 7);
    let got = r.measures().map(|(_, v)| v.unwrap());
    let want = direct(&h, &labels, c, &w, &b);
    for (i, (g, e)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - e).abs() <= 1e-9 * e.abs().max(1.0),
            "measure {i}: {g} vs {e}"
        );
    }
    // Streaming in chunks equals one pass over everything.
    let one = m(&h, n);
    let nc1 = r.nc1.unwrap();
    assert!((one.nc1.unwrap() - nc1).abs() <= 1e-12 * nc1);
    assert_eq!(one.nc4, r.nc4);
    // NC1 is unchanged when every feature is scaled by a constant.
    let scaled = m(&(&h * 3.7), 7);
    assert!(
        (scaled.nc1.unwrap() - nc1).abs() <= 1e-10 * nc1,
        "{:?} vs {nc1}",
        scaled.nc1
    );
    // A class without samples is an error.
    let six = Classifier::new(&Tensor::randn([6, dim], D), None, "test").unwrap();
    let e = measure(&h, &lab(&labels, 6), &six, None, 7)
        .unwrap_err()
        .to_string();
    assert!(e.contains("class 5 has no samples"), "{e}");
    // Classifiers NC cannot measure: one class, a zero row, NaN, integer weights.
    let bad = [
        (Tensor::randn([1, dim], D), "at least 2"),
        (Tensor::zeros([3, dim], D), "row 0 is zero"),
        (Tensor::full([3, dim], f64::NAN, D), "NaN"),
        (
            Tensor::ones([3, dim], (tch::Kind::Int64, tch::Device::Cpu)),
            "float matrix",
        ),
    ];
    for (w, why) in bad {
        let e = Classifier::new(&w, None, "test").err().unwrap().to_string();
        assert!(e.contains(why), "{e}");
    }
}

#[test]
fn nc_loss_gradients_match_finite_differences() {
    tch::manual_seed(5);
    let (c, dim) = (3i64, 4i64);
    let labels = Tensor::from_slice(&[0i64, 1, 2, 0, 1, 2, 0, 1]);
    let h = Tensor::randn([8, dim], D).set_requires_grad(true);
    let w = Tensor::randn([c, dim], D).set_requires_grad(true);
    let loss = nc_loss(&h, &labels, &w, c);
    loss.backward();
    let (gh, gw) = (h.grad(), w.grad());
    let eps = 1e-6;
    for (x, g) in [(&h, &gh), (&w, &gw)] {
        let flat = x.detach().flatten(0, -1);
        for i in 0..flat.size()[0] {
            let bump = |s: f64| {
                let y = flat.copy();
                let _ = y.get(i).g_add_scalar_(s);
                let y = y.view(x.size().as_slice());
                let l = if x.size() == h.size() {
                    nc_loss(&y, &labels, &w.detach(), c)
                } else {
                    nc_loss(&h.detach(), &labels, &y, c)
                };
                f64::try_from(l).unwrap()
            };
            let fd = (bump(eps) - bump(-eps)) / (2.0 * eps);
            let an = f64::try_from(g.flatten(0, -1).get(i)).unwrap();
            assert!(
                (fd - an).abs() <= 1e-5 * fd.abs().max(1.0),
                "element {i}: autograd {an} vs finite difference {fd}"
            );
        }
    }
}
