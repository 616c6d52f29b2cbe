//! The seeded random streams of a run, one per purpose, each a ChaCha8 generator derived from the
//! run's seed. Separate streams keep each use independent of the others (changing the subset size
//! does not change the augmentation), and one place lists them all.
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// What a stream is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// The train/validation split of the training file.
    Split,
    /// Shuffling and augmentation of one (0-based) training epoch.
    Epoch(usize),
    /// Generated OoD sets.
    Generated,
    /// The class-balanced subset NC tracking measures.
    TrackSubset,
    /// The class-balanced subset of the training split a run trains on (`data.train_subset`).
    TrainSubset,
    /// The random permutations of a report's tests (report::stats) and their simulations.
    Resampling,
}

/// The generator of `stream` for `seed`. The derivations are fixed: changing one changes every
/// result of that stream.
pub fn rng(seed: u64, stream: Stream) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(match stream {
        Stream::Split => seed ^ 0x5eed_0000_5711_7000,
        Stream::Epoch(e) => seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (e as u64),
        Stream::Generated => seed ^ 0x00d5_e700_0000_0001,
        Stream::TrackSubset => seed ^ 0x7ac0_0000_0000_0005,
        Stream::TrainSubset => seed ^ 0x7a10_0000_0000_0006,
        Stream::Resampling => seed ^ 0xb007_0000_0000_0007,
    })
}
