//! Recording GPU work: one command encoder whose dispatches share compute passes, and, for a
//! caller that records the same work again and again (a decode loop), the parameter blocks and
//! bind groups kept from one recording to the next.
//!
//! Each compute pass costs the host (and in the browser, the GPU process) tens of microseconds,
//! so consecutive dispatches go into one pass; a copy or a clear ends it, and the next dispatch
//! opens a new one. Storage writes are visible to the next dispatch within a pass (WebGPU orders
//! dispatches and synchronizes usage at dispatch granularity), so nothing changes in what the
//! kernels see.
//!
//! [`Reuse`] removes the remaining allocations of a repeated recording: kernel parameters are
//! written into slots of a few long-lived uniform buffers (one `write_buffer` per chunk at
//! submit), and a bind group is looked up by (pipeline, bound buffers and ranges) instead of
//! created. A recording that repeats the same dispatches over the same buffers therefore creates
//! no buffer and no bind group.

use std::collections::HashMap;
use std::num::NonZeroU64;

use crate::gpu::GpuContext;

/// Bytes of one uniform buffer of the parameter arena; 1024 parameter slots of 256 bytes.
const ARENA_CHUNK_BYTES: u64 = 256 * 1024;
/// Bind groups not used by this many recordings in a row are dropped (with the buffers they
/// hold alive, such as a weight that was replaced). Two alternating recordings (a quantized and
/// an as-loaded forward) keep theirs.
const BIND_GROUP_LIFETIME: u64 = 4;

/// A bound buffer range: the buffer and (offset, size in bytes; 0 = to the end).
type BoundRange = (wgpu::Buffer, u64, u64);

#[derive(PartialEq, Eq, Hash)]
struct BindKey {
    pipeline: wgpu::ComputePipeline,
    entries: Vec<BoundRange>,
}

/// What a repeated recording keeps between recordings (see the module docs).
#[derive(Default)]
pub struct Reuse {
    arena: Vec<wgpu::Buffer>,
    /// This recording's parameter bytes, slot after slot; written to `arena` at submit.
    staged: Vec<u8>,
    bind_groups: HashMap<BindKey, (wgpu::BindGroup, u64)>,
    recording: u64,
}

impl Reuse {
    pub fn new() -> Box<Reuse> {
        Box::default()
    }

    /// Reserves the next parameter slot for `bytes` and returns (arena chunk, offset in it).
    fn slot(&mut self, ctx: &GpuContext, bytes: &[u8]) -> (wgpu::Buffer, u64) {
        let align = ctx.limits.min_uniform_buffer_offset_alignment.max(16) as u64;
        let size = (bytes.len() as u64).next_multiple_of(16).max(16);
        let mut at = (self.staged.len() as u64).next_multiple_of(align);
        // A slot never straddles two chunks.
        if at % ARENA_CHUNK_BYTES + size > ARENA_CHUNK_BYTES {
            at = at.next_multiple_of(ARENA_CHUNK_BYTES);
        }
        let chunk = (at / ARENA_CHUNK_BYTES) as usize;
        while self.arena.len() <= chunk {
            self.arena.push(ctx.uniform_arena("kernel parameters", ARENA_CHUNK_BYTES));
        }
        self.staged.resize(at as usize, 0);
        self.staged.extend_from_slice(bytes);
        self.staged.resize((at + size) as usize, 0);
        (self.arena[chunk].clone(), at % ARENA_CHUNK_BYTES)
    }

    fn bind_group(&mut self, ctx: &GpuContext, pipeline: &wgpu::ComputePipeline, entries: Vec<BoundRange>) -> wgpu::BindGroup {
        let key = BindKey { pipeline: pipeline.clone(), entries };
        let recording = self.recording;
        if let Some((group, used)) = self.bind_groups.get_mut(&key) {
            *used = recording;
            return group.clone();
        }
        let group = ctx.bind_group(pipeline, &key.entries);
        self.bind_groups.insert(key, (group.clone(), recording));
        group
    }

    /// Writes the staged parameters and ends this recording.
    fn flush(&mut self, ctx: &GpuContext) {
        for (chunk, bytes) in self.staged.chunks(ARENA_CHUNK_BYTES as usize).enumerate() {
            ctx.queue.write_buffer(&self.arena[chunk], 0, bytes);
        }
        self.staged.clear();
        let recording = self.recording;
        self.bind_groups.retain(|_, (_, used)| *used + BIND_GROUP_LIFETIME > recording);
        self.recording += 1;
    }
}

/// A command encoder with its open compute pass, and optionally a [`Reuse`].
pub struct Recorder {
    // Declared first so that it is dropped before the encoder it locks.
    pass: Option<wgpu::ComputePass<'static>>,
    encoder: wgpu::CommandEncoder,
    reuse: Option<Box<Reuse>>,
    passes: u32,
    dispatches: u32,
}

/// Counts of what one recording did, for the benchmark.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RecordingStats {
    pub compute_passes: u32,
    /// Dispatches recorded into this recording alone (the context's count also has every other
    /// recording's, from other threads included).
    pub dispatches: u32,
}

impl Recorder {
    pub(crate) fn new(encoder: wgpu::CommandEncoder, reuse: Option<Box<Reuse>>) -> Recorder {
        Recorder { pass: None, encoder, reuse, passes: 0, dispatches: 0 }
    }

    /// The open compute pass for one more dispatch, opening one if none is.
    pub(crate) fn pass(&mut self) -> &mut wgpu::ComputePass<'static> {
        self.dispatches += 1;
        if self.pass.is_none() {
            self.passes += 1;
        }
        let encoder = &mut self.encoder;
        self.pass.get_or_insert_with(|| encoder.begin_compute_pass(&wgpu::ComputePassDescriptor::default()).forget_lifetime())
    }

    /// The encoder itself, for commands outside compute passes (the open pass ends first).
    fn outside_pass(&mut self) -> &mut wgpu::CommandEncoder {
        self.pass = None;
        &mut self.encoder
    }

    pub fn copy_buffer_to_buffer(
        &mut self,
        source: &wgpu::Buffer,
        source_offset: u64,
        destination: &wgpu::Buffer,
        destination_offset: u64,
        size: u64,
    ) {
        self.outside_pass().copy_buffer_to_buffer(source, source_offset, destination, destination_offset, size);
    }

    pub fn clear_buffer(&mut self, buffer: &wgpu::Buffer, offset: u64, size: Option<u64>) {
        self.outside_pass().clear_buffer(buffer, offset, size);
    }

    /// Binds `params` at binding 0 and `buffers` from binding 1: from the [`Reuse`] if there is
    /// one, else freshly made.
    pub(crate) fn bind(
        &mut self,
        ctx: &GpuContext,
        pipeline: &wgpu::ComputePipeline,
        params: &[u8],
        buffers: &[&wgpu::Buffer],
    ) -> wgpu::BindGroup {
        let whole = |b: &&wgpu::Buffer| ((*b).clone(), 0, 0);
        match &mut self.reuse {
            Some(reuse) => {
                let (chunk, offset) = reuse.slot(ctx, params);
                let size = (params.len() as u64).next_multiple_of(16).max(16);
                let entries = std::iter::once((chunk, offset, size)).chain(buffers.iter().map(whole)).collect();
                reuse.bind_group(ctx, pipeline, entries)
            }
            None => {
                let uniform = ctx.uniform_bytes("kernel parameters", params);
                let entries: Vec<BoundRange> =
                    std::iter::once((uniform, 0, 0)).chain(buffers.iter().map(whole)).collect();
                ctx.bind_group(pipeline, &entries)
            }
        }
    }

    pub fn stats(&self) -> RecordingStats {
        RecordingStats { compute_passes: self.passes, dispatches: self.dispatches }
    }

    /// Ends the recording: writes the reused parameters, returns the finished commands and the
    /// [`Reuse`] for the next recording.
    pub(crate) fn finish(mut self, ctx: &GpuContext) -> (wgpu::CommandBuffer, Option<Box<Reuse>>) {
        self.pass = None;
        if let Some(reuse) = &mut self.reuse {
            reuse.flush(ctx);
        }
        (self.encoder.finish(), self.reuse.take())
    }
}

/// `(buffer, offset, size)` as a binding resource; size 0 binds to the end of the buffer.
pub(crate) fn binding(range: &BoundRange) -> wgpu::BindingResource<'_> {
    let (buffer, offset, size) = range;
    wgpu::BindingResource::Buffer(wgpu::BufferBinding { buffer, offset: *offset, size: NonZeroU64::new(*size) })
}
