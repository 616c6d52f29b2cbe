//! Readers on small files written in the real formats, including truncated and corrupt ones:
//! every problem is an error naming the file, never a panic or silently fewer samples.
mod common;
use common::*;
use ncood::Error;
use ncood::data::{DataSource, Normalization, Split, cifar, split_indices, svhn};
use std::path::Path;

fn source(root: &Path, verify: bool) -> DataSource {
    DataSource {
        root: root.to_path_buf(),
        verify,
    }
}

#[test]
fn idx_gzip_and_plain_read_and_verify() {
    let tmp = tempfile::tempdir().unwrap();
    fake_fashion_mnist(tmp.path(), 50, 20);
    let train = source(tmp.path(), false)
        .read_file_split("fashion-mnist".parse().unwrap(), true)
        .unwrap();
    let (px, lb) = digit_like(50, 1);
    assert_eq!(train.pixels, px);
    assert_eq!(
        train.labels,
        lb.iter().map(|&l| l as i64).collect::<Vec<_>>()
    );
    assert_eq!(train.info.side, 28);
    // Plain (uncompressed) IDX works too.
    let dir = tmp.path().join("fashion-mnist");
    let (test_px, _) = digit_like(20, 2);
    std::fs::remove_file(dir.join("t10k-images-idx3-ubyte.gz")).unwrap();
    std::fs::write(
        dir.join("t10k-images-idx3-ubyte"),
        ncood::data::idx::encode_idx(&[20, 28, 28], &test_px),
    )
    .unwrap();
    let test = source(tmp.path(), false)
        .load("fashion-mnist".parse().unwrap(), Split::Test, 0, 0.1)
        .unwrap();
    assert_eq!(test.pixels, test_px);
    // These are not the published files: with verification on, the digest check names the file.
    let err = source(tmp.path(), true)
        .read_file_split("fashion-mnist".parse().unwrap(), true)
        .unwrap_err();
    assert!(matches!(err, Error::Digest { .. }), "{err}");
    assert!(
        err.to_string().contains("train-images-idx3-ubyte.gz"),
        "{err}"
    );
}

#[test]
fn idx_truncated_corrupt_and_mismatched_are_errors() {
    let tmp = tempfile::tempdir().unwrap();
    fake_fashion_mnist(tmp.path(), 30, 10);
    let dir = tmp.path().join("fashion-mnist");
    let imgs = dir.join("train-images-idx3-ubyte.gz");
    let good = std::fs::read(&imgs).unwrap();
    // Truncated gzip stream.
    std::fs::write(&imgs, &good[..good.len() / 2]).unwrap();
    let e = source(tmp.path(), false)
        .read_file_split("fashion-mnist".parse().unwrap(), true)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("train-images-idx3-ubyte.gz") && e.contains("gzip"),
        "{e}"
    );
    // Intact gzip of a truncated IDX payload.
    let (px, _) = digit_like(30, 1);
    let payload = ncood::data::idx::encode_idx(&[30, 28, 28], &px);
    std::fs::write(&imgs, gzip(&payload[..payload.len() - 100])).unwrap();
    let e = source(tmp.path(), false)
        .read_file_split("fashion-mnist".parse().unwrap(), true)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("train-images-idx3-ubyte.gz") && e.contains("truncated"),
        "{e}"
    );
    // Label count that does not match the images.
    std::fs::write(&imgs, gzip(&payload)).unwrap();
    std::fs::write(
        dir.join("train-labels-idx1-ubyte.gz"),
        gzip(&ncood::data::idx::encode_idx(&[29], &[0; 29])),
    )
    .unwrap();
    let e = source(tmp.path(), false)
        .read_file_split("fashion-mnist".parse().unwrap(), true)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("train-labels-idx1-ubyte.gz") && e.contains("[29]"),
        "{e}"
    );
    // Label out of range.
    std::fs::write(
        dir.join("train-labels-idx1-ubyte.gz"),
        gzip(&ncood::data::idx::encode_idx(&[30], &[11; 30])),
    )
    .unwrap();
    let e = source(tmp.path(), false)
        .read_file_split("fashion-mnist".parse().unwrap(), true)
        .unwrap_err()
        .to_string();
    assert!(e.contains("label 0 is 11"), "{e}");
    // Wrong image size.
    std::fs::write(
        &imgs,
        gzip(&ncood::data::idx::encode_idx(&[1, 32, 32], &[0; 1024])),
    )
    .unwrap();
    let e = source(tmp.path(), false)
        .read_file_split("fashion-mnist".parse().unwrap(), true)
        .unwrap_err()
        .to_string();
    assert!(e.contains("[N, 28, 28]"), "{e}");
}

#[test]
fn missing_files_and_unknown_sets_are_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    for name in ["fashion-mnist", "mnist", "cifar10", "cifar100", "svhn"] {
        let e = source(tmp.path(), true)
            .load(name.parse().unwrap(), Split::Test, 0, 0.1)
            .unwrap_err();
        assert!(matches!(e, Error::MissingData { .. }), "{name}: {e}");
        assert!(e.to_string().contains(name), "{e}");
    }
    let e = "imagenet".parse::<ncood::data::DatasetKind>().unwrap_err();
    assert!(matches!(e, Error::UnknownDataset { .. }));
    assert!(e.to_string().contains("imagenet") && e.to_string().contains("cifar100"));
    let e = source(tmp.path(), true)
        .load("mnist".parse().unwrap(), Split::Train, 0, 0.1)
        .unwrap_err();
    assert!(e.to_string().contains("only test"), "{e}");
}

#[test]
fn cifar_archive_and_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let n = 12;
    let imgs = pattern_images(n);
    let labels: Vec<u8> = (0..n as u8).map(|i| i % 10).collect();
    let mut files = vec![];
    for b in 1..=5 {
        files.push((
            format!("cifar-10-batches-bin/data_batch_{b}.bin"),
            cifar_records(&imgs, &labels, false),
        ));
    }
    files.push((
        "cifar-10-batches-bin/test_batch.bin".to_string(),
        cifar_records(&imgs[..3072 * 4], &labels[..4], false),
    ));
    files.push((
        "cifar-10-batches-bin/batches.meta.txt".to_string(),
        b"airplane\n".to_vec(),
    ));
    let dir = tmp.path().join("cifar10");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("cifar-10-binary.tar.gz"), tar_gz(&files)).unwrap();
    let train = source(tmp.path(), false)
        .read_file_split("cifar10".parse().unwrap(), true)
        .unwrap();
    assert_eq!(train.len(), 5 * n);
    assert_eq!(&train.pixels[..3072 * n], &imgs[..]);
    assert_eq!(
        train.labels[..n],
        labels.iter().map(|&l| l as i64).collect::<Vec<_>>()[..]
    );
    let test = source(tmp.path(), false)
        .read_file_split("cifar10".parse().unwrap(), false)
        .unwrap();
    assert_eq!(test.len(), 4);
    // The archive is checked against the published digest.
    let e = source(tmp.path(), true)
        .read_file_split("cifar10".parse().unwrap(), true)
        .unwrap_err();
    assert!(matches!(e, Error::Digest { .. }), "{e}");
    // A corrupt archive is an error naming it.
    let good = std::fs::read(dir.join("cifar-10-binary.tar.gz")).unwrap();
    std::fs::write(dir.join("cifar-10-binary.tar.gz"), &good[..good.len() / 3]).unwrap();
    let e = source(tmp.path(), false)
        .read_file_split("cifar10".parse().unwrap(), true)
        .unwrap_err()
        .to_string();
    assert!(e.contains("cifar-10-binary.tar.gz"), "{e}");
    // The extracted folder is read when there is no archive.
    std::fs::remove_file(dir.join("cifar-10-binary.tar.gz")).unwrap();
    let folder = dir.join("cifar-10-batches-bin");
    std::fs::create_dir_all(&folder).unwrap();
    for (path, bytes) in &files {
        std::fs::write(dir.join(path), bytes).unwrap();
    }
    let from_folder = source(tmp.path(), true)
        .read_file_split("cifar10".parse().unwrap(), true)
        .unwrap();
    assert_eq!(from_folder.pixels, train.pixels);
    // Truncated batch file.
    let batch = folder.join("data_batch_3.bin");
    let bytes = std::fs::read(&batch).unwrap();
    std::fs::write(&batch, &bytes[..bytes.len() - 1]).unwrap();
    let e = source(tmp.path(), false)
        .read_file_split("cifar10".parse().unwrap(), true)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("data_batch_3.bin") && e.contains("3073-byte records"),
        "{e}"
    );
}

#[test]
fn cifar100_uses_fine_labels_and_checks_range() {
    let imgs = pattern_images(3);
    let (mut out_i, mut out_l) = (vec![], vec![]);
    let p = Path::new("train.bin");
    cifar::parse_records(
        &cifar_records(&imgs, &[99, 5, 42], true),
        cifar::Variant::Cifar100,
        p,
        &mut out_i,
        &mut out_l,
    )
    .unwrap();
    assert_eq!(out_l, vec![99, 5, 42]);
    assert_eq!(out_i, imgs);
    let e = cifar::parse_records(
        &cifar_records(&imgs, &[10, 5, 42], false),
        cifar::Variant::Cifar10,
        p,
        &mut out_i,
        &mut out_l,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("record 0: label 10"), "{e}");
    let e = cifar::parse_records(&[], cifar::Variant::Cifar10, p, &mut out_i, &mut out_l)
        .unwrap_err()
        .to_string();
    assert!(e.contains("train.bin"), "{e}");
}

#[test]
fn svhn_mat_plain_and_compressed() {
    let n = 5;
    let imgs = pattern_images(n);
    let labels: Vec<f64> = vec![10.0, 1.0, 2.0, 9.0, 10.0];
    for compress in [false, true] {
        let bytes = svhn_mat(&imgs, &labels, compress);
        let (px, lb) = svhn::parse_svhn(&bytes, Path::new("test_32x32.mat")).unwrap();
        assert_eq!(px, imgs, "compress={compress}");
        assert_eq!(lb, vec![0, 1, 2, 9, 0]);
        // Truncated at many points: always an error naming the file, never a panic.
        for cut in [0, 10, 128, 200, bytes.len() / 2, bytes.len() - 1] {
            let e = svhn::parse_svhn(&bytes[..cut], Path::new("test_32x32.mat"));
            assert!(e.is_err(), "cut {cut} compress={compress}");
            assert!(e.unwrap_err().to_string().contains("test_32x32.mat"));
        }
    }
    let bad = svhn_mat(&imgs, &[0.0, 1.0, 2.0, 3.0, 4.0], false);
    let e = svhn::parse_svhn(&bad, Path::new("x.mat"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("label 0 is 0"), "{e}");
    // Through the registry, with and without digest verification.
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(tmp.path().join("svhn")).unwrap();
    std::fs::write(
        tmp.path().join("svhn/test_32x32.mat"),
        svhn_mat(&imgs, &labels, true),
    )
    .unwrap();
    assert_eq!(
        source(tmp.path(), false)
            .load("svhn".parse().unwrap(), Split::Test, 0, 0.1)
            .unwrap()
            .len(),
        n
    );
    let e = source(tmp.path(), true)
        .load("svhn".parse().unwrap(), Split::Test, 0, 0.1)
        .unwrap_err();
    assert!(matches!(e, Error::Digest { .. }));
}

#[test]
fn split_is_seeded_disjoint_and_complete() {
    let (t, v) = split_indices(1000, 0.1, 3);
    assert_eq!(v.len(), 100);
    assert_eq!(t.len(), 900);
    let mut all: Vec<usize> = t.iter().chain(&v).copied().collect();
    all.sort();
    assert_eq!(all, (0..1000).collect::<Vec<_>>());
    assert_eq!(split_indices(1000, 0.1, 3), (t.clone(), v.clone()));
    assert_ne!(split_indices(1000, 0.1, 4).1, v);
    assert_eq!(split_indices(10, 0.0, 0).1.len(), 0);
}

#[test]
fn train_subset_is_class_balanced_seeded_and_within_the_split() {
    let tmp = tempfile::tempdir().unwrap();
    fake_fashion_mnist(tmp.path(), 400, 20);
    let mut cfg = ncood::data::DataConfig {
        root: Some(tmp.path().to_path_buf()),
        verify: false,
        train_subset: 100,
        ..Default::default()
    };
    let load = |cfg: &ncood::data::DataConfig, seed| ncood::data::RunData::load(cfg, seed).unwrap();
    let a = load(&cfg, 1);
    assert_eq!(a.train.len(), 100);
    for c in 0..10 {
        assert_eq!(a.train.labels.iter().filter(|&&l| l == c).count(), 10);
    }
    // Seeded: the same seed picks the same images, another seed others; validation untouched.
    assert_eq!(load(&cfg, 1).train.pixels, a.train.pixels);
    assert_ne!(load(&cfg, 2).train.pixels, a.train.pixels);
    cfg.train_subset = 0;
    let whole = load(&cfg, 1);
    assert_eq!((whole.train.len(), whole.val.len()), (360, a.val.len()));
    // Every picked image is one of the training split's (none from validation).
    let b = a.train.image_bytes();
    let images: std::collections::HashSet<&[u8]> = whole.train.pixels.chunks(b).collect();
    assert!(a.train.pixels.chunks(b).all(|p| images.contains(p)));
    // A subset smaller than the classes leaves no image: an error, not an empty run.
    cfg.train_subset = 5;
    let e = ncood::data::RunData::load(&cfg, 1)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("training split has 0 image"), "{e}");
}

#[test]
fn normalization_matches_direct_formula() {
    let tmp = tempfile::tempdir().unwrap();
    fake_fashion_mnist(tmp.path(), 40, 10);
    let d = source(tmp.path(), false)
        .read_file_split("fashion-mnist".parse().unwrap(), true)
        .unwrap();
    let n = Normalization::of(&d).unwrap();
    let vals: Vec<f64> = d.pixels.iter().map(|&p| p as f64 / 255.0).collect();
    let mean = vals.iter().sum::<f64>() / vals.len() as f64;
    let var = vals.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / vals.len() as f64;
    assert!((n.mean[0] - mean).abs() < 1e-12);
    assert!((n.std[0] - var.sqrt()).abs() < 1e-9);
}
