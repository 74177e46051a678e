//! What both stores do alike with identification jobs: cutting a gallery into shards, the
//! record of a new job, and reading a job's shard bits.

use crate::{JobRecord, JobState, Result, ShardRange, StoreError};

/// A job's shards: the gallery's positions, in order, cut into consecutive runs of at most
/// `per_shard` templates (0 counts as 1), numbered from 0.
pub(crate) fn shard_ranges(positions: &[i64], per_shard: usize) -> Result<Vec<ShardRange>> {
    let per_shard = per_shard.max(1);
    // Shard numbers are stored as 32-bit integers.
    if positions.len().div_ceil(per_shard) > i32::MAX as usize {
        return Err(StoreError::Backend(
            "too many shards: give a larger shard size".into(),
        ));
    }
    Ok(positions
        .chunks(per_shard)
        .enumerate()
        .filter_map(|(index, chunk)| {
            Some(ShardRange {
                shard: index as u32,
                first_position: *chunk.first()?,
                last_position: *chunk.last()?,
            })
        })
        .collect())
}

/// The record of a job just created over `gallery_size` templates in `shards_total` shards.
pub(crate) fn new_job(
    job_id: &str,
    domain: &str,
    key_id: &str,
    gallery_size: usize,
    shards_total: usize,
    now: &str,
) -> JobRecord {
    JobRecord {
        job_id: job_id.to_owned(),
        domain: domain.to_owned(),
        key_id: key_id.to_owned(),
        state: JobState::Running,
        gallery_size: gallery_size as u64,
        shards_total: shards_total as u32,
        shards_done: 0,
        error: None,
        audit_seq: None,
        created_at: now.to_owned(),
        updated_at: now.to_owned(),
    }
}

/// The bits of a running job's shards from `(shards_total, bit)` rows in shard order (one row
/// with no bit for a job without shards): all of them, or None while some are missing.
pub(crate) fn collect_bits(rows: Vec<(i64, Option<Vec<u8>>)>) -> Result<Option<Vec<Vec<u8>>>> {
    let Some(&(total, _)) = rows.first() else {
        return Ok(None);
    };
    if total == 0 {
        return Ok(Some(Vec::new()));
    }
    let bits: Option<Vec<Vec<u8>>> = rows.into_iter().map(|(_, bit)| bit).collect();
    match bits {
        Some(bits) if bits.len() as i64 == total => Ok(Some(bits)),
        Some(_) => Err(StoreError::Corrupt(
            "a running job's shard count does not match its shards".into(),
        )),
        None => Ok(None),
    }
}
