//! Metrics against values worked out by hand (the arithmetic is in the comments) and against a
//! direct O(n^2) pair count.
use ncood::metrics::{auroc, classification, detection};

fn close(a: f64, b: f64) {
    assert!((a - b).abs() < 1e-12, "{a} vs {b}");
}

#[test]
fn perfect_separation() {
    let d = detection(&[3.0, 4.0, 5.0], &[0.0, 1.0, 2.0]).unwrap();
    close(d.auroc, 1.0);
    close(d.aupr_in, 1.0);
    close(d.aupr_out, 1.0);
    close(d.fpr95_ood_positive, 0.0);
    close(d.fpr95_id_positive, 0.0);
    assert_eq!(d.topn_false_positives, 0);
}

#[test]
fn perfect_inversion() {
    // OoD-ness, descending: ID 0, -1, -2 then OoD -3, -4, -5. AP-out steps at the OoD samples:
    // 1/3 * 1/4 + 1/3 * 2/5 + 1/3 * 3/6 = 23/60.
    let d = detection(&[0.0, 1.0, 2.0], &[3.0, 4.0, 5.0]).unwrap();
    close(d.auroc, 0.0);
    close(d.aupr_out, 23.0 / 60.0);
    close(d.aupr_in, 23.0 / 60.0);
    close(d.fpr95_ood_positive, 1.0);
    close(d.fpr95_id_positive, 1.0);
    assert_eq!(d.topn_false_positives, 3);
}

#[test]
fn all_scores_equal() {
    // One threshold: AUROC 1/2, AP = share of positives, everything passes the threshold, and the
    // N = 2 top slots go to OoD samples (ties against OoD).
    let d = detection(&[1.0, 1.0], &[1.0, 1.0, 1.0]).unwrap();
    close(d.auroc, 0.5);
    close(d.aupr_out, 3.0 / 5.0);
    close(d.aupr_in, 2.0 / 5.0);
    close(d.fpr95_ood_positive, 1.0);
    close(d.fpr95_id_positive, 1.0);
    assert_eq!(d.topn_false_positives, 2);
}

#[test]
fn mixed_ties() {
    // ID conf 0.9 0.5 0.5 0.1, OoD conf 0.5 0.2.
    // AUROC: OoD 0.5 beats ID 0.1, ties two 0.5s (1 + 0.5 + 0.5 = 2); OoD 0.2 beats 0.5, 0.5, 0.1
    //   in OoD-ness (3): 5 / 8.
    // AP-out (OoD-ness desc: ID -0.1 | OoD -0.2 | {ID, ID, OoD} -0.5 | ID -0.9):
    //   0.5 * 1/2 + 0.5 * 2/5 = 0.45.
    // AP-in (conf desc: ID 0.9 | {ID, ID, OoD} 0.5 | OoD 0.2 | ID 0.1):
    //   0.25 * 1 + 0.5 * 3/4 + 0.25 * 4/6 = 0.791666...
    // FPR95 OoD+: k = ceil(1.9) = 2, threshold -0.5 in OoD-ness; ID at >= -0.5: 3 of 4.
    // FPR95 ID+: k = ceil(3.8) = 4, threshold 0.1; both OoD accepted.
    // Top-N (N = 4), OoD first among ties: ID .9, OoD .5, ID .5, ID .5 -> 1.
    let d = detection(&[0.9, 0.5, 0.5, 0.1], &[0.5, 0.2]).unwrap();
    close(d.auroc, 0.625);
    close(d.aupr_out, 0.45);
    close(d.aupr_in, 0.25 + 0.375 + 1.0 / 6.0);
    close(d.fpr95_ood_positive, 0.75);
    close(d.fpr95_id_positive, 1.0);
    assert_eq!(d.topn_false_positives, 1);
}

#[test]
fn single_ood_sample() {
    // OoD conf 2 vs ID 1, 2, 3: beats 1 (OoD-ness -2 > -3)... ranks: 1 win, 1 tie, 1 loss -> 1.5/3.
    let d = detection(&[1.0, 2.0, 3.0], &[2.0]).unwrap();
    close(d.auroc, 0.5);
    close(d.fpr95_ood_positive, 2.0 / 3.0);
    assert_eq!(d.topn_false_positives, 1);
}

#[test]
fn auroc_equals_direct_pair_count() {
    let mut state = 12345u64;
    let mut next = || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((state >> 33) % 20) as f64 // few distinct values: many ties
    };
    for _ in 0..20 {
        let pos: Vec<f64> = (0..37).map(|_| next()).collect();
        let neg: Vec<f64> = (0..23).map(|_| next() - 2.0).collect();
        let mut wins = 0.0;
        for p in &pos {
            for n in &neg {
                wins += if p > n {
                    1.0
                } else if p == n {
                    0.5
                } else {
                    0.0
                };
            }
        }
        close(auroc(&pos, &neg), wins / (pos.len() * neg.len()) as f64);
    }
}

#[test]
fn bad_inputs_are_errors() {
    assert!(detection(&[], &[1.0]).is_err());
    assert!(detection(&[1.0], &[]).is_err());
    let e = detection(&[1.0, f64::NAN], &[1.0]).unwrap_err().to_string();
    assert!(e.contains("sample 1"), "{e}");
    assert!(classification(&[0.5], &[true, false]).is_err());
}

#[test]
fn accuracy_and_ece() {
    // Bins (k/15, (k+1)/15]: 0.95 -> bin 14, 0.55 -> bin 8.
    // ECE = 2/4 |1/2 - 0.95| + 2/4 |1 - 0.55| = 0.45.
    let c = classification(&[0.95, 0.95, 0.55, 0.55], &[true, false, true, true]).unwrap();
    close(c.accuracy, 0.75);
    close(c.ece, 0.45);
    // Perfect calibration: confidence 1 and always right.
    let c = classification(&[1.0, 1.0], &[true, true]).unwrap();
    close(c.ece, 0.0);
}
