//! The error rates of the verdict statistics (report::stats) over simulated studies: how often a
//! claim with no true effect gets a verdict (false verdicts), and how often the planted effect
//! each method is sized for is found (power), per number of seeds. SPEC 8's table comes from
//! here: `cargo run --release --example verdict_power [SIMS [N,N,...]]` (default 2,000
//! studies per cell, n = 3, 5, 6, 8, 10, 12, 15 seeds per group).
use ncood::report::stats::{METHODS, null, simulate};

fn main() {
    let sims: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse().expect("SIMS is a number"))
        .unwrap_or(2000);
    let ns: Vec<usize> = match std::env::args().nth(2) {
        Some(list) => list
            .split(',')
            .map(|n| n.parse().expect("N,N,... are numbers"))
            .collect(),
        None => vec![3, 5, 6, 8, 10, 12, 15],
    };
    println!("{sims} simulated studies per cell; seeds per group across\n");
    let head: Vec<String> = ns.iter().map(|n| format!("n={n}")).collect();
    println!("| method | rate | {} |", head.join(" | "));
    println!("|---|---|{}", "---|".repeat(ns.len()));
    for m in METHODS {
        let row = |effect, pick: fn(f64, f64) -> f64| -> Vec<String> {
            ns.iter()
                .map(|&n| {
                    let r = simulate(m, n, effect, sims, 1000 + n as u64);
                    format!("{:.3}", pick(r.supported, r.contradicted))
                })
                .collect()
        };
        println!(
            "| {} | false verdicts (null) | {} |",
            m.name(),
            row(null(m), |s, c| s + c).join(" | ")
        );
        println!(
            "| {} | power ({:?}; min seeds {}) | {} |",
            m.name(),
            m.planted(),
            m.min_seeds(),
            row(m.planted(), |s, _| s).join(" | ")
        );
    }
}
