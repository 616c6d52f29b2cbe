//! Safetensors checkpoints: named tensors plus string metadata, written atomically and byte for
//! byte the same for the same tensors and metadata.
//!
//! The writer is ours rather than the `safetensors` crate's: that one serialises the metadata from
//! a HashMap, in an order that changes from process to process, so two runs of the same seed wrote
//! files with equal tensors but different sha256. Here the header is JSON with sorted keys and the
//! tensors are laid out in name order. Reading goes through the crate, which checks every offset.
use crate::error::{Error, Result};
use safetensors::tensor::{Dtype, SafeTensors};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use tch::{Device, Tensor};

/// Checkpoint metadata: string keys and values, kept sorted.
pub type Metadata = BTreeMap<String, String>;

/// A tensor's little-endian bytes (as libtorch holds them on the CPU).
fn tensor_bytes(t: &Tensor) -> Result<(Dtype, Vec<usize>, Vec<u8>)> {
    let t = t.to_device(Device::Cpu).contiguous();
    let dtype = Dtype::try_from(t.kind())?;
    let numel = t.numel();
    let mut bytes = vec![0u8; numel * t.kind().elt_size_in_bytes()];
    t.f_copy_data_u8(&mut bytes, numel)?;
    Ok((dtype, t.size().iter().map(|&d| d as usize).collect(), bytes))
}

/// Serialises named tensors and metadata to safetensors bytes: an 8-byte little-endian header
/// length, the JSON header (sorted keys, padded with spaces to a multiple of 8), then the data in
/// name order.
pub fn to_bytes(tensors: &[(String, Tensor)], metadata: &Metadata) -> Result<Vec<u8>> {
    let mut sorted: Vec<&(String, Tensor)> = tensors.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    let mut header = serde_json::Map::new(); // a BTreeMap: keys come out sorted
    header.insert(
        "__metadata__".into(),
        serde_json::to_value(metadata).unwrap(),
    );
    let mut data = Vec::new();
    for (name, t) in sorted {
        let (dtype, shape, bytes) = tensor_bytes(t)?;
        let info = serde_json::json!({
            "dtype": format!("{dtype:?}"),
            "shape": shape,
            "data_offsets": [data.len(), data.len() + bytes.len()],
        });
        if header.insert(name.clone(), info).is_some() {
            return Err(Error::Invalid {
                what: "checkpoint tensors".into(),
                problem: format!("the name {name} appears twice"),
            });
        }
        data.extend_from_slice(&bytes);
    }
    let mut json = serde_json::to_string(&header).expect("plain data serialises");
    json.push_str(&" ".repeat(json.len().next_multiple_of(8) - json.len()));
    let mut out = Vec::with_capacity(8 + json.len() + data.len());
    out.extend_from_slice(&(json.len() as u64).to_le_bytes());
    out.extend_from_slice(json.as_bytes());
    out.extend_from_slice(&data);
    Ok(out)
}

/// Writes a safetensors file atomically.
pub fn write(path: &Path, tensors: &[(String, Tensor)], metadata: &Metadata) -> Result<()> {
    crate::atomic::write(path, &to_bytes(tensors, metadata)?)
}

/// Reads a safetensors file: its tensors (on the CPU) and metadata.
pub fn read(path: &Path) -> Result<(HashMap<String, Tensor>, Metadata)> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    parse(&bytes).map_err(|problem| Error::bad_file(path, problem))
}

/// Parses safetensors bytes; the error says what is wrong.
pub fn parse(bytes: &[u8]) -> std::result::Result<(HashMap<String, Tensor>, Metadata), String> {
    let bad = |e| format!("not a valid safetensors file: {e:?}");
    let st = SafeTensors::deserialize(bytes).map_err(bad)?;
    let (_, meta) = SafeTensors::read_metadata(bytes).map_err(bad)?;
    let mut tensors = HashMap::new();
    for (name, view) in st.tensors() {
        let t = Tensor::try_from(view).map_err(|e| format!("tensor {name}: {e}"))?;
        tensors.insert(name, t);
    }
    let meta = meta.metadata().clone().unwrap_or_default();
    Ok((tensors, meta.into_iter().collect()))
}

/// Copies the tensors of `src` (read from `path`) into `targets` by name (e.g. a VarStore's
/// `variables()`), checking shapes and kinds; every target must be present.
pub fn load_into(
    targets: HashMap<String, Tensor>,
    src: &HashMap<String, Tensor>,
    path: &Path,
) -> Result<()> {
    tch::no_grad(|| {
        for (key, mut var) in targets {
            let t = src
                .get(&key)
                .ok_or_else(|| Error::bad_file(path, format!("missing tensor {key}")))?;
            if t.size() != var.size() || t.kind() != var.kind() {
                return Err(Error::ShapeMismatch {
                    what: format!("{} tensor {key}", path.display()),
                    expected: format!("{:?} {:?}", var.size(), var.kind()),
                    got: format!("{:?} {:?}", t.size(), t.kind()),
                });
            }
            var.f_copy_(t)?;
        }
        Ok(())
    })
}
