//! One GPU device, its features and limits, buffers, dispatch and readback.
//!
//! Errors never panic: wgpu's default handler for uncaptured errors panics natively, so the
//! context installs its own that records them, and every readback checks the record. Device loss
//! is recorded the same way.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use wgpu::util::DeviceExt;

use crate::error::GpuError;
use crate::gpu::recorder::{binding, Recorder, Reuse};
use crate::gpu::shader::ShaderSource;

/// Optional capabilities. Every kernel has a path that needs none of them (Chromium's
/// SwiftShader adapter has no shader-f16), so these only ever select faster variants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct GpuFeatures {
    pub shader_f16: bool,
    pub subgroups: bool,
    pub timestamps: bool,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct AdapterSummary {
    pub name: String,
    pub backend: String,
    pub device_type: String,
    pub driver: String,
    pub features: GpuFeatures,
    pub max_storage_buffer_binding_size: u64,
    pub max_buffer_size: u64,
    pub max_compute_invocations_per_workgroup: u32,
    pub max_compute_workgroups_per_dimension: u32,
}

impl AdapterSummary {
    /// Whether the adapter rasterizes on the CPU (Mesa's lavapipe/llvmpipe, SwiftShader, WARP):
    /// there, the engine's many small dispatches cost more than the CPU reference's loops.
    pub fn is_software(&self) -> bool {
        let name = self.name.to_ascii_lowercase();
        self.device_type == "Cpu"
            || ["llvmpipe", "lavapipe", "swiftshader", "microsoft basic render"].iter().any(|s| name.contains(s))
    }
}

type PipelineKey = (String, String, String);

pub struct GpuContext {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub summary: AdapterSummary,
    pub limits: wgpu::Limits,
    pipelines: Mutex<HashMap<PipelineKey, Arc<wgpu::ComputePipeline>>>,
    errors: Arc<Mutex<Vec<GpuError>>>,
    /// Resolves with wgpu's reason once the device is lost; taken by whoever watches for that.
    lost: Mutex<Option<futures_channel::oneshot::Receiver<String>>>,
    /// Dispatches recorded so far (the benchmark reports dispatches per token).
    dispatches: AtomicU64,
    /// Buffers and bind groups created so far (a repeated decode step should create none).
    buffers_created: AtomicU64,
    bind_groups_created: AtomicU64,
    /// Bytes uploaded since the queue last took its pending writes (see [`GpuContext::upload`]).
    unflushed_upload_bytes: AtomicU64,
    stand_in: std::sync::OnceLock<wgpu::Buffer>,
}

/// Storage buffers are read and written by kernels and copied for readback and uploads.
const STORAGE: wgpu::BufferUsages =
    wgpu::BufferUsages::STORAGE.union(wgpu::BufferUsages::COPY_SRC).union(wgpu::BufferUsages::COPY_DST);

impl GpuContext {
    /// The default adapter (high performance), with every optional feature it has and its full
    /// limits, so large weight tensors can be bound whole where the hardware allows.
    pub async fn new() -> Result<Self, GpuError> {
        Self::with_binding_limit(u64::MAX).await
    }

    pub async fn from_adapter(adapter: wgpu::Adapter) -> Result<Self, GpuError> {
        Self::from_adapter_with_binding_limit(adapter, u64::MAX).await
    }

    /// The default adapter with its storage bindings capped at `max_binding` bytes (below what
    /// the adapter allows): how the tests make a small matrix span several bindings, as a 262k
    /// vocabulary's embeddings do on an adapter of 128 MiB bindings.
    pub async fn with_binding_limit(max_binding: u64) -> Result<Self, GpuError> {
        let mut descriptor = wgpu::InstanceDescriptor::new_without_display_handle();
        descriptor.backends = wgpu::Backends::PRIMARY;
        let instance = wgpu::Instance::new(descriptor.with_env());
        // Compute only: Vulkan, Metal, DX12 or the browser's WebGPU (WGPU_BACKEND overrides).
        let adapter = instance
            .request_adapter(&wgpu::RequestAdapterOptions {
                power_preference: wgpu::PowerPreference::HighPerformance,
                ..Default::default()
            })
            .await
            .map_err(|e| GpuError::NoAdapter { message: e.to_string() })?;
        Self::from_adapter_with_binding_limit(adapter, max_binding).await
    }

    async fn from_adapter_with_binding_limit(adapter: wgpu::Adapter, max_binding: u64) -> Result<Self, GpuError> {
        let info = adapter.get_info();
        let available = adapter.features();
        let wanted = wgpu::Features::SHADER_F16 | wgpu::Features::SUBGROUP | wgpu::Features::TIMESTAMP_QUERY;
        let required_features = available & wanted;
        let mut limits = adapter.limits();
        limits.max_storage_buffer_binding_size = limits.max_storage_buffer_binding_size.min(max_binding);
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                label: Some("quantscope"),
                required_features,
                required_limits: limits.clone(),
                ..Default::default()
            })
            .await
            .map_err(|e| GpuError::RequestDevice { adapter: info.name.clone(), message: e.to_string() })?;

        let errors: Arc<Mutex<Vec<GpuError>>> = Arc::default();
        let sink = errors.clone();
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            let error = match e {
                wgpu::Error::OutOfMemory { .. } => {
                    GpuError::OutOfMemory { what: "a GPU call".into(), message: e.to_string() }
                }
                _ => GpuError::Validation { what: "a GPU call".into(), message: e.to_string() },
            };
            if let Ok(mut errors) = sink.lock() {
                errors.push(error);
            }
        }));
        let sink = errors.clone();
        let (lost_sender, lost) = futures_channel::oneshot::channel();
        let lost_sender = Mutex::new(Some(lost_sender));
        device.set_device_lost_callback(move |reason, message| {
            let message = format!("{reason:?}: {message}");
            if let Some(sender) = lost_sender.lock().ok().and_then(|mut s| s.take()) {
                let _ = sender.send(message.clone());
            }
            if let Ok(mut errors) = sink.lock() {
                errors.push(GpuError::DeviceLost { message });
            }
        });

        let features = GpuFeatures {
            shader_f16: required_features.contains(wgpu::Features::SHADER_F16),
            subgroups: required_features.contains(wgpu::Features::SUBGROUP),
            timestamps: required_features.contains(wgpu::Features::TIMESTAMP_QUERY),
        };
        let summary = AdapterSummary {
            name: info.name.clone(),
            backend: format!("{:?}", info.backend),
            device_type: format!("{:?}", info.device_type),
            driver: format!("{} {}", info.driver, info.driver_info).trim().to_string(),
            features,
            max_storage_buffer_binding_size: limits.max_storage_buffer_binding_size,
            max_buffer_size: limits.max_buffer_size,
            max_compute_invocations_per_workgroup: limits.max_compute_invocations_per_workgroup,
            max_compute_workgroups_per_dimension: limits.max_compute_workgroups_per_dimension,
        };
        Ok(GpuContext {
            device,
            queue,
            summary,
            limits,
            pipelines: Mutex::default(),
            errors,
            lost: Mutex::new(Some(lost)),
            dispatches: Default::default(),
            buffers_created: Default::default(),
            bind_groups_created: Default::default(),
            unflushed_upload_bytes: Default::default(),
            stand_in: Default::default(),
        })
    }

    pub fn features(&self) -> GpuFeatures {
        self.summary.features
    }

    /// A future of the reason the device is lost (a driver reset, the GPU process restarting, or
    /// `destroy`); `None` once taken. It never resolves while the device lives, and resolves to
    /// `Canceled` if the context is dropped first.
    pub fn take_device_lost(&self) -> Option<futures_channel::oneshot::Receiver<String>> {
        self.lost.lock().ok().and_then(|mut l| l.take())
    }

    /// The first error recorded since the last check, labelled with `what`.
    pub fn check(&self, what: &str) -> Result<(), GpuError> {
        let first = match self.errors.lock() {
            Ok(mut errors) => errors.drain(..).next(),
            Err(_) => Some(GpuError::DeviceLost { message: "the error log was poisoned".into() }),
        };
        match first {
            None => Ok(()),
            Some(GpuError::Validation { message, .. }) => Err(GpuError::Validation { what: what.into(), message }),
            Some(GpuError::OutOfMemory { message, .. }) => Err(GpuError::OutOfMemory { what: what.into(), message }),
            Some(other) => Err(other),
        }
    }

    /// Refuses sizes a binding cannot hold, before wgpu would raise a validation error.
    pub fn check_binding_size(&self, what: &str, bytes: u64) -> Result<(), GpuError> {
        let limits = [
            ("maxBufferSize", self.summary.max_buffer_size),
            ("maxStorageBufferBindingSize", self.summary.max_storage_buffer_binding_size),
        ];
        for (limit_name, limit) in limits {
            if bytes > limit {
                return Err(GpuError::TooLarge { what: what.into(), bytes, limit_name, limit });
            }
        }
        Ok(())
    }

    /// A storage buffer holding `bytes` (padded with zeros to a multiple of 4).
    pub fn upload(&self, label: &str, bytes: &[u8]) -> Result<wgpu::Buffer, GpuError> {
        self.check_binding_size(label, bytes.len() as u64)?;
        // wgpu needs non-empty buffers whose size is a multiple of 4: copy only when padding.
        let contents: std::borrow::Cow<[u8]> = if bytes.len().is_multiple_of(4) && !bytes.is_empty() {
            bytes.into()
        } else {
            let mut padded = bytes.to_vec();
            padded.resize(bytes.len().next_multiple_of(4).max(4), 0);
            padded.into()
        };
        self.buffers_created.fetch_add(1, Ordering::Relaxed);
        let buffer = self.device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some(label),
            contents: &contents,
            usage: STORAGE,
        });
        self.flush_uploads_every(contents.len() as u64);
        Ok(buffer)
    }

    /// wgpu stages every upload in a buffer of its own, freed only after the queue has submitted
    /// the copy and the GPU has done it; a model uploaded in one go would hold all of its weights
    /// twice (on a software GPU, both copies in host memory). So every `UPLOAD_FLUSH_BYTES` the
    /// pending copies are submitted and, natively, waited for. The browser frees its staging
    /// memory itself.
    fn flush_uploads_every(&self, bytes: u64) {
        const UPLOAD_FLUSH_BYTES: u64 = 256 << 20;
        let pending = self.unflushed_upload_bytes.fetch_add(bytes, Ordering::Relaxed) + bytes;
        if pending >= UPLOAD_FLUSH_BYTES {
            self.unflushed_upload_bytes.store(0, Ordering::Relaxed);
            self.queue.submit(std::iter::empty());
            #[cfg(not(target_arch = "wasm32"))]
            let _ = self.device.poll(wgpu::PollType::wait_indefinitely());
        }
    }

    pub fn upload_f32(&self, label: &str, values: &[f32]) -> Result<wgpu::Buffer, GpuError> {
        self.upload(label, bytemuck::cast_slice(values))
    }

    pub fn upload_u32(&self, label: &str, values: &[u32]) -> Result<wgpu::Buffer, GpuError> {
        self.upload(label, bytemuck::cast_slice(values))
    }

    /// An uninitialized (zeroed by WebGPU rules) storage buffer of `bytes`.
    pub fn storage(&self, label: &str, bytes: u64) -> Result<wgpu::Buffer, GpuError> {
        self.check_binding_size(label, bytes)?;
        self.buffers_created.fetch_add(1, Ordering::Relaxed);
        Ok(self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: bytes.max(4).next_multiple_of(4),
            usage: STORAGE,
            mapped_at_creation: false,
        }))
    }

    /// A small storage buffer that stands in for a binding a kernel's layout has but this
    /// dispatch never touches (one per context, so the forward allocates none per step). It
    /// must not be bound twice in one dispatch.
    pub fn stand_in(&self) -> Result<&wgpu::Buffer, GpuError> {
        if let Some(b) = self.stand_in.get() {
            return Ok(b);
        }
        let b = self.storage("stand-in (never read)", 16)?;
        Ok(self.stand_in.get_or_init(|| b))
    }

    /// A uniform buffer holding `params`, for a kernel whose parameters are not at binding 0
    /// (see [`GpuContext::dispatch_buffers`]).
    pub fn uniform<P: bytemuck::Pod>(&self, label: &str, params: &P) -> wgpu::Buffer {
        self.uniform_bytes(label, bytemuck::bytes_of(params))
    }

    /// A uniform buffer holding `bytes` (zero-padded: uniform buffers are read in 16-byte units).
    pub(crate) fn uniform_bytes(&self, label: &str, bytes: &[u8]) -> wgpu::Buffer {
        let mut padded = bytes.to_vec();
        padded.resize(bytes.len().next_multiple_of(16).max(16), 0);
        self.buffers_created.fetch_add(1, Ordering::Relaxed);
        self.device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some(label),
            contents: &padded,
            usage: wgpu::BufferUsages::UNIFORM,
        })
    }

    /// A uniform buffer of `bytes` written with `queue.write_buffer` (the parameter arena of a
    /// [`Reuse`]).
    pub(crate) fn uniform_arena(&self, label: &str, bytes: u64) -> wgpu::Buffer {
        self.buffers_created.fetch_add(1, Ordering::Relaxed);
        self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: bytes,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        })
    }

    /// A storage buffer for mapping results back to the CPU.
    pub(crate) fn readback_buffer(&self, bytes: u64) -> wgpu::Buffer {
        self.buffers_created.fetch_add(1, Ordering::Relaxed);
        self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("readback"),
            size: bytes.next_multiple_of(4).max(4),
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        })
    }

    /// The compute pipeline for `entry` of `source` with the given override constants, compiled
    /// once and cached by (source key, entry, constants).
    pub fn pipeline(
        &self,
        source: &ShaderSource,
        entry: &str,
        constants: &[(&str, f64)],
    ) -> Result<Arc<wgpu::ComputePipeline>, GpuError> {
        let key = (source.key.clone(), entry.to_string(), format!("{constants:?}"));
        if let Some(p) = self.pipelines.lock().ok().and_then(|m| m.get(&key).cloned()) {
            return Ok(p);
        }
        let module = self.device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some(&source.key),
            source: wgpu::ShaderSource::Wgsl(source.code().into()),
        });
        let pipeline = self.device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(&format!("{}::{entry}", source.key)),
            layout: None,
            module: &module,
            entry_point: Some(entry),
            compilation_options: wgpu::PipelineCompilationOptions { constants, ..Default::default() },
            cache: None,
        });
        self.check(&format!("compiling {}::{entry}", source.key))?;
        let pipeline = Arc::new(pipeline);
        if let Ok(mut m) = self.pipelines.lock() {
            m.insert(key, pipeline.clone());
        }
        Ok(pipeline)
    }

    /// Records one dispatch: `params` (a `#[repr(C)]` struct mirrored by the kernel's WGSL
    /// `Params`) at binding 0 of group 0 and `buffers[i]` at binding i + 1. `workgroups` is a
    /// count that [`GpuContext::grid`] spreads over x and y when it exceeds the per-dimension
    /// limit.
    pub fn dispatch<P: bytemuck::Pod>(
        &self,
        recorder: &mut Recorder,
        pipeline: &wgpu::ComputePipeline,
        params: &P,
        buffers: &[&wgpu::Buffer],
        workgroups: u32,
    ) {
        let bind_group = recorder.bind(self, pipeline, bytemuck::bytes_of(params), buffers);
        let (x, y) = self.grid(workgroups);
        let pass = recorder.pass();
        pass.set_pipeline(pipeline);
        pass.set_bind_group(0, &bind_group, &[]);
        pass.dispatch_workgroups(x, y, 1);
        self.dispatches.fetch_add(1, Ordering::Relaxed);
    }

    /// Records one dispatch with `buffers[i]` at binding i (uniforms included), for kernels off
    /// the forward's hot path whose layout does not start with the parameters.
    pub fn dispatch_buffers(
        &self,
        recorder: &mut Recorder,
        pipeline: &wgpu::ComputePipeline,
        buffers: &[&wgpu::Buffer],
        workgroups: u32,
    ) {
        let entries: Vec<(wgpu::Buffer, u64, u64)> = buffers.iter().map(|b| ((*b).clone(), 0, 0)).collect();
        let bind_group = self.bind_group(pipeline, &entries);
        let (x, y) = self.grid(workgroups);
        let pass = recorder.pass();
        pass.set_pipeline(pipeline);
        pass.set_bind_group(0, &bind_group, &[]);
        pass.dispatch_workgroups(x, y, 1);
        self.dispatches.fetch_add(1, Ordering::Relaxed);
    }

    /// A bind group of `entries` (buffer, offset, size; 0 = the whole buffer) at bindings
    /// 0, 1, … of `pipeline`'s group 0.
    pub(crate) fn bind_group(
        &self,
        pipeline: &wgpu::ComputePipeline,
        entries: &[(wgpu::Buffer, u64, u64)],
    ) -> wgpu::BindGroup {
        let layout = pipeline.get_bind_group_layout(0);
        let entries: Vec<wgpu::BindGroupEntry> = entries
            .iter()
            .enumerate()
            .map(|(i, range)| wgpu::BindGroupEntry { binding: i as u32, resource: binding(range) })
            .collect();
        self.bind_groups_created.fetch_add(1, Ordering::Relaxed);
        self.device.create_bind_group(&wgpu::BindGroupDescriptor { label: None, layout: &layout, entries: &entries })
    }

    /// Dispatches recorded since the context was made.
    pub fn dispatch_count(&self) -> u64 {
        self.dispatches.load(Ordering::Relaxed)
    }

    /// Buffers created since the context was made (by this context's helpers: every buffer of
    /// the engine is).
    pub fn buffer_count(&self) -> u64 {
        self.buffers_created.load(Ordering::Relaxed)
    }

    /// Bind groups created since the context was made.
    pub fn bind_group_count(&self) -> u64 {
        self.bind_groups_created.load(Ordering::Relaxed)
    }

    /// Blocks until all submitted work is done (native; the browser has no blocking wait).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn wait_idle(&self) -> Result<(), GpuError> {
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| GpuError::Readback { what: "waiting for the GPU".into(), message: e.to_string() })?;
        self.check("waiting for the GPU")
    }

    /// Splits a linear workgroup count into (x, y) within the per-dimension limit. Kernels
    /// recover the linear index as `wg.x + wg.y * num_workgroups.x`, and must ignore indices past
    /// their work (x·y may exceed the count).
    pub fn grid(&self, workgroups: u32) -> (u32, u32) {
        let max = self.summary.max_compute_workgroups_per_dimension.max(1);
        if workgroups <= max {
            (workgroups.max(1), 1)
        } else {
            let y = workgroups.div_ceil(max);
            (workgroups.div_ceil(y), y)
        }
    }

    /// A recorder that makes its parameter buffers and bind groups as it goes.
    pub fn encoder(&self) -> Recorder {
        Recorder::new(self.device.create_command_encoder(&wgpu::CommandEncoderDescriptor::default()), None)
    }

    /// A recorder that takes parameter slots and bind groups from `reuse` (see [`Reuse`]).
    pub fn encoder_reusing(&self, reuse: Box<Reuse>) -> Recorder {
        Recorder::new(self.device.create_command_encoder(&wgpu::CommandEncoderDescriptor::default()), Some(reuse))
    }

    /// Submits the recording; returns its [`Reuse`], if it had one, for the next recording.
    pub fn submit(&self, recorder: Recorder) -> Option<Box<Reuse>> {
        let (commands, reuse) = recorder.finish(self);
        self.queue.submit([commands]);
        reuse
    }

    /// Copies `bytes` bytes of `buffer` to the CPU (waits for all submitted work first).
    pub async fn read_bytes(&self, buffer: &wgpu::Buffer, bytes: u64, what: &str) -> Result<Vec<u8>, GpuError> {
        let staging = self.readback_buffer(bytes);
        self.read_through(buffer, &staging, bytes, what).await
    }

    /// Copies `bytes` bytes of `buffer` to the CPU through `staging` (a [`GpuContext::readback_buffer`]
    /// at least that large, unmapped), which the caller may keep for the next read.
    pub async fn read_through(
        &self,
        buffer: &wgpu::Buffer,
        staging: &wgpu::Buffer,
        bytes: u64,
        what: &str,
    ) -> Result<Vec<u8>, GpuError> {
        let size = Self::staged_size(staging, bytes, what)?;
        let mut encoder = self.device.create_command_encoder(&wgpu::CommandEncoderDescriptor::default());
        encoder.copy_buffer_to_buffer(buffer, 0, staging, 0, size);
        self.queue.submit([encoder.finish()]);
        self.read_staged(staging, bytes, what).await
    }

    /// The first `bytes` bytes of `staging` (a [`GpuContext::readback_buffer`], unmapped), once the
    /// work submitted so far, which filled it, is done. Lets a step copy its results into staging
    /// in its own submission instead of a second one.
    pub async fn read_staged(&self, staging: &wgpu::Buffer, bytes: u64, what: &str) -> Result<Vec<u8>, GpuError> {
        let size = Self::staged_size(staging, bytes, what)?;
        let (sender, receiver) = futures_channel::oneshot::channel();
        staging.slice(..size).map_async(wgpu::MapMode::Read, move |result| {
            let _ = sender.send(result);
        });
        #[cfg(not(target_arch = "wasm32"))]
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| GpuError::Readback { what: what.into(), message: e.to_string() })?;
        let mapped = receiver
            .await
            .map_err(|_| GpuError::Readback { what: what.into(), message: "mapping was cancelled".into() })?;
        mapped.map_err(|e| GpuError::Readback { what: what.into(), message: e.to_string() })?;
        // Unmapped on every path from here, so a kept staging buffer stays usable after an error.
        let data = self.check(what).and_then(|()| {
            Ok(staging
                .slice(..size)
                .get_mapped_range()
                .map_err(|e| GpuError::Readback { what: what.into(), message: e.to_string() })?[..bytes as usize]
                .to_vec())
        });
        staging.unmap();
        data
    }

    /// `bytes` rounded up to whole words, or an error if `staging` cannot hold them.
    fn staged_size(staging: &wgpu::Buffer, bytes: u64, what: &str) -> Result<u64, GpuError> {
        let size = bytes.next_multiple_of(4).max(4);
        if staging.size() < size {
            return Err(GpuError::Readback {
                what: what.into(),
                message: format!("{size} bytes do not fit a {}-byte staging buffer", staging.size()),
            });
        }
        Ok(size)
    }

    pub async fn read_f32(&self, buffer: &wgpu::Buffer, len: usize, what: &str) -> Result<Vec<f32>, GpuError> {
        let bytes = self.read_bytes(buffer, 4 * len as u64, what).await?;
        Ok(bytemuck::pod_collect_to_vec(&bytes))
    }

    pub async fn read_u32(&self, buffer: &wgpu::Buffer, len: usize, what: &str) -> Result<Vec<u32>, GpuError> {
        let bytes = self.read_bytes(buffer, 4 * len as u64, what).await?;
        Ok(bytemuck::pod_collect_to_vec(&bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn adapter(name: &str, device_type: &str) -> AdapterSummary {
        AdapterSummary {
            name: name.into(),
            backend: "Vulkan".into(),
            device_type: device_type.into(),
            driver: String::new(),
            features: GpuFeatures::default(),
            max_storage_buffer_binding_size: 0,
            max_buffer_size: 0,
            max_compute_invocations_per_workgroup: 0,
            max_compute_workgroups_per_dimension: 0,
        }
    }

    #[test]
    fn software_adapters_are_told_apart_from_hardware() {
        assert!(adapter("llvmpipe (LLVM 15.0.7, 256 bits)", "Cpu").is_software());
        // Chromium reports SwiftShader without a CPU device type.
        assert!(adapter("Google SwiftShader", "Other").is_software());
        assert!(!adapter("NVIDIA H200", "DiscreteGpu").is_software());
        assert!(!adapter("Apple M2", "IntegratedGpu").is_software());
    }
}
