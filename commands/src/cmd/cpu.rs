//! `msr read`/`msr write`, `cpuid` and `cpu`: the processor itself.

use alloc::string::String;
use core::fmt::Write;

use drivers::cpu::cpuid::CpuSummary;
use drivers::cpu::msr;
use drivers::platform::{MsrError, Width};
use evidence::{Body, CpuInfo, CpuidLeaf};

use super::{read_frame, write_frame, write_text, WriteRecord};
use crate::args::Args;
use crate::table::{CmdError, CommandSpec, Ctx};

pub static COMMANDS: &[CommandSpec] = &[
    CommandSpec {
        name: "msr read",
        usage: "msr read <index>",
        summary: "read a model-specific register (RDMSR)",
        details: "Reads the 64-bit MSR index. An MSR the CPU or hypervisor does not implement raises #GP; the \
                  monitor catches it and reports 'msr-gp' (nothing faults). 0x1b, IA32_APIC_BASE, shows the \
                  local APIC base and the BSP bit. Emits a reg.read frame (space msr).",
        examples: &["msr read 0x1b", "msr read 0xc0000080"],
        min_args: 1,
        max_args: 1,
        flags: &[],
        run: msr_read,
    },
    CommandSpec {
        name: "msr write",
        usage: "msr write <index> <value>",
        summary: "write a model-specific register (WRMSR), then read it back",
        details: "Reads the old value, writes value to MSR index and reads it back. A refused write (#GP: \
                  reserved bits, read-only MSR) is an 'msr-gp' error and changes nothing. No confirmation: \
                  writing EFER or APIC_BASE can stop the machine, which is yours to do. Emits a reg.write frame.",
        examples: &["msr write 0x277 0x0007040600070406"],
        min_args: 2,
        max_args: 2,
        flags: &[],
        run: msr_write,
    },
    CommandSpec {
        name: "cpuid",
        usage: "cpuid <leaf> [subleaf]",
        summary: "the four registers CPUID answers for a leaf",
        details: "Executes CPUID with EAX=leaf, ECX=subleaf (default 0) and prints EAX, EBX, ECX, EDX, with \
                  the bytes as text (leaf 0: the vendor string in EBX, EDX, ECX). Emits a cpuid frame.",
        examples: &["cpuid 0", "cpuid 7 0", "cpuid 0x40000000"],
        min_args: 1,
        max_args: 2,
        flags: &[],
        run: cpuid,
    },
    CommandSpec {
        name: "cpu",
        usage: "cpu",
        summary: "vendor, model, hypervisor, features, TSC frequency",
        details: "Decodes CPUID: vendor, family/model/stepping, brand string, the hypervisor's signature (leaf \
                  0x40000000, when CPUID.1 says one is present), the features bring-up cares about (sse4.2, \
                  x2apic, aes, rdrand, avx2, sha-ni, invariant-tsc, the AMD sme/sev/sev-es/sev-snp \
                  capability bits, a TDX guest leaf), the boot CPU's APIC id, the TSC frequency and the source \
                  it came from, with every source the monitor tried at boot (CPUID 0x15, kvmclock, the \
                  hypervisor leaf 0x40000010, the ACPI PM timer, the HPET, CPUID 0x16, the PIT): its rate or \
                  why it has none, its raw values, and how far it disagrees with the rate used; and the \
                  monitor's confidential-VM verdict. Emits a cpu frame.",
        examples: &["cpu"],
        min_args: 0,
        max_args: 0,
        flags: &[],
        run: cpu,
    },
];

fn index_of(args: &Args) -> Result<u32, CmdError> {
    let index = args.number(0, "index")?;
    u32::try_from(index).map_err(|_| {
        CmdError::new(
            "bad-argument",
            alloc::format!("MSR index {index:#x} is wider than 32 bits"),
        )
    })
}

fn gp(index: u32, what: &str) -> impl Fn(MsrError) -> CmdError + '_ {
    move |MsrError::GeneralProtection| {
        CmdError::new(
            "msr-gp",
            alloc::format!("{what} MSR {index:#x} raised #GP: the CPU (or hypervisor) refuses it"),
        )
    }
}

fn name_of(index: u32) -> String {
    msr::name(index)
        .map(|n| alloc::format!(" {n}"))
        .unwrap_or_default()
}

fn msr_read(ctx: &mut Ctx, args: &Args) -> Result<(), CmdError> {
    let index = index_of(args)?;
    let value = ctx.hw.cpu.read_msr(index).map_err(gp(index, "rdmsr of"))?;
    let _ = writeln!(
        ctx.out,
        "MSR {index:#x}{}: {value:#018x}{}",
        name_of(index),
        describe(index, value)
    );
    ctx.out.frame(read_frame(
        "msr",
        String::new(),
        index as u64,
        Width::W8,
        &[value],
    ));
    Ok(())
}

/// A decoded view of the MSRs the monitor knows (pure).
pub fn describe(index: u32, value: u64) -> String {
    if index == msr::IA32_APIC_BASE {
        let base = msr::ApicBase::from_raw(value);
        return alloc::format!(
            " (APIC base {:#x}{}{}{})",
            base.address,
            if base.bsp { ", BSP" } else { "" },
            if base.enabled {
                ", enabled"
            } else {
                ", disabled"
            },
            if base.x2apic { ", x2APIC mode" } else { "" }
        );
    }
    String::new()
}

fn msr_write(ctx: &mut Ctx, args: &Args) -> Result<(), CmdError> {
    let index = index_of(args)?;
    let value = args.number(1, "value")?;
    let before = ctx.hw.cpu.read_msr(index).map_err(gp(index, "rdmsr of"))?;
    ctx.hw
        .cpu
        .write_msr(index, value)
        .map_err(gp(index, "wrmsr to"))?;
    let readback = ctx.hw.cpu.read_msr(index).map_err(gp(index, "rdmsr of"))?;
    let record = WriteRecord {
        space: "msr",
        target: String::new(),
        address: index as u64,
        width: Width::W8,
        before,
        value,
        readback,
    };
    ctx.out.print(&write_text(
        &alloc::format!("MSR {index:#x}{}", name_of(index)),
        &record,
    ));
    ctx.out.frame(write_frame(&record));
    Ok(())
}

fn cpuid(ctx: &mut Ctx, args: &Args) -> Result<(), CmdError> {
    let leaf = args.number(0, "leaf")?;
    let subleaf = args
        .get(1)
        .map(|_| args.number(1, "subleaf"))
        .transpose()?
        .unwrap_or(0);
    let (Ok(leaf), Ok(subleaf)) = (u32::try_from(leaf), u32::try_from(subleaf)) else {
        return Err(CmdError::new("bad-argument", "leaf and subleaf are 32-bit"));
    };
    let r = ctx.hw.cpu.cpuid(leaf, subleaf);
    let _ = writeln!(
        ctx.out,
        "cpuid {leaf:#x}.{subleaf}: eax {:#010x} ebx {:#010x} ecx {:#010x} edx {:#010x}\n  as text (ebx edx ecx): \"{}\"",
        r.eax,
        r.ebx,
        r.ecx,
        r.edx,
        drivers::cpu::cpuid::register_text(&[r.ebx, r.edx, r.ecx])
    );
    ctx.out.frame(Body::Cpuid(CpuidLeaf {
        leaf,
        subleaf,
        eax: r.eax,
        ebx: r.ebx,
        ecx: r.ecx,
        edx: r.edx,
    }));
    Ok(())
}

fn cpu(ctx: &mut Ctx, _: &Args) -> Result<(), CmdError> {
    let summary = CpuSummary::read(ctx.hw.cpu);
    let tsc_hz = ctx.info.tsc_hz;
    let sha256_path = drivers::digest::sha256_path(ctx.hw.cpu);
    ctx.out.print(&cpu_text(&summary));
    ctx.out.print(&super::tsc_text::text(&ctx.info.tsc));
    ctx.out.print(&alloc::format!(
        "sha256 engine for nvme read: {sha256_path}\n"
    ));
    let _ = writeln!(ctx.out, "confidential VM: {}", ctx.info.confidential.name());
    ctx.out.frame(Body::CpuInfo(CpuInfo {
        vendor: summary.vendor,
        family: summary.family,
        model: summary.model,
        stepping: summary.stepping,
        brand: summary.brand.chars().take(48).collect(),
        hypervisor: summary.hypervisor,
        features: summary.features.iter().map(|f| String::from(*f)).collect(),
        tsc_hz,
        apic_id: summary.apic_id,
        sha256_path: sha256_path.name().into(),
        confidential: ctx.info.confidential.name().into(),
        tsc_source: ctx.info.tsc.source_name().into(),
        tsc_sources: super::tsc_text::frame(&ctx.info.tsc),
    }));
    Ok(())
}

/// The human text of `cpu` (pure).
pub fn cpu_text(s: &CpuSummary) -> String {
    let hypervisor = if s.hypervisor.is_empty() {
        String::from("none (bare metal)")
    } else {
        s.hypervisor.clone()
    };
    alloc::format!(
        "vendor {}, family {:#x} model {:#x} stepping {}\nbrand: {}\nhypervisor: {hypervisor}\n\
         features: {}\nboot CPU APIC id {}\n",
        s.vendor,
        s.family,
        s.model,
        s.stepping,
        if s.brand.is_empty() {
            "(none)"
        } else {
            &s.brand
        },
        if s.features.is_empty() {
            String::from("(none)")
        } else {
            s.features.join(" ")
        },
        s.apic_id,
    )
}
