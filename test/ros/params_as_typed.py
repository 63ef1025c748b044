"""Every node parameter, with a value as people type it (YAML text, as `-p name:=text`, a launch argument or a
params file line gives it) and the value the node must make of it. Shared by the unit and the process tests."""
from __future__ import annotations

# name: (text as typed, value meant). Values differ from the defaults where they can, so a test sees them arrive.
AS_TYPED: dict[str, tuple[str, object]] = {
    "model_path": ("MODEL", "MODEL"),  # the test puts its checkpoint here
    "device": ("cpu", "cpu"),
    "dtype": ("float32", "float32"),
    "threads": ("2", 2),
    "quantization": ("none", "none"),
    "cuda_graphs": ("off", False),
    "allow_pickle": ("no", False),
    "mode": ("once", "once"),
    "initial_command": ("the red cup", "the red cup"),
    "threshold": ("1", 1.0),
    "max_rate_hz": ("2", 2.0),
    "command_prefixes": ("[pick up, grab]", ["pick up", "grab"]),
    "stop_phrases": ("[halt]", ["halt"]),
    "max_command_chars": ("500", 500),
    "max_frame_age_s": ("1", 1.0),
    "centroid_of_largest_component": ("on", True),
    "tracking": ("off", "off"),
    "track_rate_hz": ("5", 5.0),
    "track_min_confidence": ("1", 1.0),
    "cameras": ("[]", [""]),
    "image_transport": ("compressed", "compressed"),
    "image_compressed": ("no", False),
    "image_qos": ("reliable", "reliable"),
    "use_depth": ("yes", True),
    "depth_registered": ("true", "true"),
    "depth_transport": ("compressedDepth", "compressedDepth"),
    "network": ("remote", "remote"),
    "depth_scale": ("1", 1.0),
    "min_depth_m": ("0", 0.0),
    "max_depth_m": ("10", 10.0),
    "depth_sync_tolerance_s": ("1", 1.0),
    "no_image_warn_s": ("1", 1.0),
    "mask_format": ("png", "png"),
    "output_qos": ("best_effort", "best_effort"),
    "publish_markers": ("on", True),
    "diagnostics_period_s": ("1", 1.0),
    "diagnostics_window_s": ("5", 5.0),
    "autostart": ("yes", True),
}


def as_typed(model_path: str) -> dict[str, tuple[str, object]]:
    return {name: (text.replace("MODEL", model_path), meant if meant != "MODEL" else model_path)
            for name, (text, meant) in AS_TYPED.items()}
