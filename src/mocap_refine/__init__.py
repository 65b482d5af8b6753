"""mocap-refine: DeepMimic clips -> MuJoCo humanoid actions, refined and verified."""

__version__ = "0.1.0"

# Register the Gymnasium environment mocap_refine/Tracking-v0 (mocap_refine.env).
# Gymnasium 1.x loads no entry-point plugins, so the package registers it on
# import: `import mocap_refine` or the id "mocap_refine:mocap_refine/Tracking-v0".
try:
    import gymnasium as _gym
except ImportError:  # pragma: no cover - gymnasium is a dependency
    pass
else:
    if "mocap_refine/Tracking-v0" not in _gym.registry:
        _gym.register(id="mocap_refine/Tracking-v0", entry_point="mocap_refine.env:TrackingEnv")
    del _gym
