"""mocap-refine: DeepMimic clips -> MuJoCo humanoid actions, refined and verified."""

__version__ = "0.1.0"
