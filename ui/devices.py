"""The Train form's "Devices" field: where a job trains and on how many processes — CPU (1 or more
processes, gloo), one GPU, or N GPUs of this machine (NCCL). More than one process runs under
``torchrun`` (detcore/train/supervise.py); the batch size is per process."""

from __future__ import annotations

import os

import streamlit as st

from detcore.train.jobs import gpu_count

MAX_CPU_PROCESSES = 8


@st.cache_resource(show_spinner=False)
def _gpus() -> int:
    return gpu_count()


def device_choices(gpus: int, cores: int) -> dict[str, tuple[str, int]]:
    """Label → (device setting, processes), in the order the field lists them."""
    choices = {"CPU · 1 process": ("cpu", 1)}
    for n in range(2, max(2, min(cores, MAX_CPU_PROCESSES)) + 1):
        choices[f"CPU · {n} processes (gloo)"] = ("cpu", n)
    if gpus >= 1:
        choices["GPU · 1"] = ("cuda", 1)
    for n in range(2, gpus + 1):
        choices[f"GPUs · {n} of {gpus} (NCCL)"] = ("cuda", n)
    return choices


def devices_ui(preset_device: str, key: str, container=st) -> tuple[str, int]:
    """The field, defaulting to one GPU when the preset wants one (or ``auto``) and there is one, else
    one CPU process. Returns (device setting, number of processes)."""
    gpus, cores = _gpus(), os.cpu_count() or 1
    choices = device_choices(gpus, cores)
    default = "GPU · 1" if preset_device in ("cuda", "auto") and gpus else "CPU · 1 process"
    labels = list(choices)
    label = container.selectbox(
        "Devices", labels, index=labels.index(default), key=key,
        help="More than one process trains with DDP under torchrun, each on its share of the images; "
             "the batch size is per process. Jobs wait in a queue while their device is busy.")
    return choices[label]
