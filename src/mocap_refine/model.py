"""The DeepMimic humanoid as an MJCF model (Z-up), built from the character file.

Geometry, masses, attach points and torque limits follow
shared/reference/DEEPMIMIC_FACTS.md, mapped from DeepMimic's Y-up frame to
MuJoCo's Z-up frame by (x, y, z) -> (x, -z, y).

Spherical joints are MuJoCo ball joints (a quaternion per joint), never Euler
hinge triplets: hinge triplets hit gimbal lock on real clips (3 rad
frame-to-frame jumps on dance_a's shoulders in an earlier trial). Each ball
joint is driven by three motors whose torque axes are the joint-local x, y and
z axes (for a ball joint MuJoCo takes the torque axis from ``gear[0:3]``), so
``ctrl`` in [-1, 1] maps to a torque of up to the DeepMimic limit about each
axis. Knees and elbows are hinges about DeepMimic's local z, which is MuJoCo's
local -y.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import mujoco
import numpy as np

# Joints in DeepMimic's frame order (clip columns 8..43).
JOINTS = (
    "chest", "neck",
    "right_hip", "right_knee", "right_ankle", "right_shoulder", "right_elbow",
    "left_hip", "left_knee", "left_ankle", "left_shoulder", "left_elbow",
)
HINGE_JOINTS = ("right_knee", "right_elbow", "left_knee", "left_elbow")

TORQUE_LIMIT_NM = {
    "chest": 200.0, "neck": 50.0,
    "right_hip": 200.0, "right_knee": 150.0, "right_ankle": 90.0,
    "right_shoulder": 100.0, "right_elbow": 60.0,
}
KP = {"chest": 1000.0, "neck": 100.0, "right_hip": 500.0, "right_knee": 500.0,
      "right_ankle": 400.0, "right_shoulder": 400.0, "right_elbow": 300.0}
KD = {"chest": 100.0, "neck": 10.0, "right_hip": 50.0, "right_knee": 50.0,
      "right_ankle": 40.0, "right_shoulder": 40.0, "right_elbow": 30.0}
POSE_WEIGHT = {"root": 1.0, "chest": 0.5, "neck": 0.3, "right_hip": 0.5,
               "right_knee": 0.3, "right_ankle": 0.2, "right_shoulder": 0.3,
               "right_elbow": 0.2, "right_wrist": 0.0}
for _table in (TORQUE_LIMIT_NM, KP, KD, POSE_WEIGHT):
    for _name in list(_table):
        if _name.startswith("right_"):
            _table["left_" + _name[len("right_"):]] = _table[_name]

END_EFFECTORS = ("right_ankle", "left_ankle", "right_wrist", "left_wrist")

# Joint limits per local axis (rad) in DeepMimic's frame, for diagnostics.
JOINT_LIMITS_DM = {
    "chest": ((-1.2, 1.2), (-1.2, 1.2), (-1.2, 1.2)),
    "neck": ((-1.0, 1.0), (-1.0, 1.0), (-1.0, 1.0)),
    "right_hip": ((-1.2, 1.2), (-1.0, 1.0), (-1.57, 2.57)),
    "left_hip": ((-1.2, 1.2), (-1.0, 1.0), (-1.57, 2.57)),
    "right_ankle": ((-1.0, 1.0), (-1.0, 1.0), (-1.57, 1.57)),
    "left_ankle": ((-1.0, 1.0), (-1.0, 1.0), (-1.57, 1.57)),
    "right_shoulder": ((-3.14, 0.5), (-1.5, 1.5), (-0.7, 3.14)),
    "left_shoulder": ((-0.5, 3.14), (-1.5, 1.5), (-0.7, 3.14)),
    "right_knee": (-3.14, 0.0), "left_knee": (-3.14, 0.0),
    "right_elbow": (0.0, 3.14), "left_elbow": (0.0, 3.14),
}

# Physical options, chosen on evidence (README "Physics model"):
# - armature adds reflected rotor inertia to every actuated DoF. DeepMimic's
#   own character has none, but with one constant torque held over a whole
#   mocap frame (16-62 ms) light distal links (hands, feet: 0.5-1 kg) become
#   stiff: under smooth random actions (std 0.3) from standing, 47% of
#   rollouts diverge at armature 0.02 and 600 Hz, 3% at 0.1, 0% at 1.0
#   (benchmarks/physics_choices.py). 1.0 is 20x a forearm's own inertia and
#   would make fast arm motion exceed the elbow's 60 N m; 0.1 keeps human
#   joint accelerations (~100-200 rad/s^2) far inside every torque limit.
# - the solver's warm start is disabled so that the next state depends on
#   the current state and control only: rollouts started mid-trajectory
#   (receding horizon, single-step metrics) reproduce a full replay exactly.
# - implicitfast integrates the joint damping implicitly and is MuJoCo's
#   recommended integrator for articulated bodies; Newton solves contacts.
ARMATURE = 0.1
JOINT_DAMPING = 0.5
FLOOR_FRICTION = 1.0
DEFAULT_PHYSICS_HZ = 600.0


def _dm(v):
    """DeepMimic Y-up vector -> MuJoCo Z-up vector: (x, y, z) -> (x, -z, y)."""
    x, y, z = v
    return (x, -z, y)


def _f(*v) -> str:
    return " ".join(f"{x:.6g}" for x in v)


def _limb_xml(side: str, sign: float, damping: float, armature: float) -> tuple[str, str]:
    """Body XML for one leg and one arm (side 'right' or 'left')."""
    s = sign
    hip = _dm((0.0, 0.0, s * 0.084887))
    shoulder = _dm((-0.02405, 0.2435, s * 0.18311))
    j = f'damping="{damping}" armature="{armature}"'
    leg = f"""
      <body name="{side}_hip" pos="{_f(*hip)}">
        <joint name="{side}_hip" type="ball" {j}/>
        <geom name="{side}_thigh" type="capsule" size="0.055" fromto="0 0 -0.06 0 0 -0.36" mass="4.5"/>
        <body name="{side}_knee" pos="0 0 -0.421546">
          <joint name="{side}_knee" type="hinge" axis="0 -1 0" range="-3.14 0" {j}/>
          <geom name="{side}_shin" type="capsule" size="0.05" fromto="0 0 -0.045 0 0 -0.355" mass="3.0"/>
          <body name="{side}_ankle" pos="0 0 -0.40987">
            <joint name="{side}_ankle" type="ball" {j}/>
            <geom name="{side}_foot" type="box" size="0.0885 0.045 0.0275" pos="0.045 0 -0.0225" mass="1.0"/>
          </body>
        </body>
      </body>"""
    arm = f"""
        <body name="{side}_shoulder" pos="{_f(*shoulder)}">
          <joint name="{side}_shoulder" type="ball" {j}/>
          <geom name="{side}_upper_arm" type="capsule" size="0.045" fromto="0 0 -0.05 0 0 -0.23" mass="1.5"/>
          <body name="{side}_elbow" pos="0 0 -0.274788">
            <joint name="{side}_elbow" type="hinge" axis="0 -1 0" range="0 3.14" {j}/>
            <geom name="{side}_forearm" type="capsule" size="0.04" fromto="0 0 -0.0525 0 0 -0.1875" mass="1.0"/>
            <body name="{side}_wrist" pos="0 0 -0.258947">
              <geom name="{side}_hand" type="sphere" size="0.04" mass="0.5"/>
            </body>
          </body>
        </body>"""
    return leg, arm


def humanoid_xml(timestep: float = 1.0 / DEFAULT_PHYSICS_HZ,
                 armature: float = ARMATURE,
                 damping: float = JOINT_DAMPING,
                 friction: float = FLOOR_FRICTION) -> str:
    """MJCF text of the humanoid. Self-collisions are off (contype 1,
    conaffinity 0 on the body, the reverse on the floor), as mocap limbs
    interpenetrate slightly in crawl and roll clips."""
    rleg, rarm = _limb_xml("right", 1.0, damping, armature)
    lleg, larm = _limb_xml("left", -1.0, damping, armature)
    j = f'damping="{damping}" armature="{armature}"'
    motors = []
    for name in JOINTS:
        lim = TORQUE_LIMIT_NM[name]
        if name in HINGE_JOINTS:
            motors.append(f'<motor name="{name}" joint="{name}" gear="{lim:g}" ctrlrange="-1 1" ctrllimited="true"/>')
        else:
            for k, ax in enumerate("xyz"):
                g = [0.0] * 6
                g[k] = lim
                motors.append(f'<motor name="{name}_{ax}" joint="{name}" gear="{_f(*g)}" ctrlrange="-1 1" ctrllimited="true"/>')
    motor_xml = "\n    ".join(motors)
    return f"""<mujoco model="deepmimic_humanoid">
  <compiler angle="radian" autolimits="true"/>
  <option timestep="{timestep:.10g}" integrator="implicitfast" solver="Newton" iterations="50" tolerance="1e-10">
    <flag warmstart="disable"/>
  </option>
  <default>
    <geom contype="1" conaffinity="0" condim="3" friction="{friction} 0.005 0.0001" solref="0.005 1"/>
  </default>
  <worldbody>
    <geom name="floor" type="plane" size="0 0 1" contype="0" conaffinity="1" friction="{friction} 0.005 0.0001"/>
    <body name="root" pos="0 0 0.9">
      <freejoint name="root"/>
      <geom name="pelvis" type="sphere" size="0.09" pos="0 0 0.07" mass="6.0"/>
      <body name="chest" pos="0 0 0.236151">
        <joint name="chest" type="ball" {j}/>
        <geom name="chest" type="sphere" size="0.11" pos="0 0 0.12" mass="14.0"/>
        <body name="neck" pos="0 0 0.223894">
          <joint name="neck" type="ball" {j}/>
          <geom name="head" type="sphere" size="0.1025" pos="0 0 0.175" mass="2.0"/>
        </body>{rarm}{larm}
      </body>{rleg}{lleg}
    </body>
  </worldbody>
  <actuator>
    {motor_xml}
  </actuator>
</mujoco>
"""


def load_model(timestep: float = 1.0 / DEFAULT_PHYSICS_HZ) -> mujoco.MjModel:
    """A freshly compiled humanoid with the given physics timestep (s)."""
    return mujoco.MjModel.from_xml_string(humanoid_xml(float(timestep)))


def smooth_contact_model(model: mujoco.MjModel) -> mujoco.MjModel:
    """A planning copy of `model` whose contacts start soft (solimp[0] = 0,
    as MuJoCo MPC's planning model), for derivatives that do not jump at
    contact events; rollouts that count stay on the exact model."""
    import copy
    smooth = copy.deepcopy(model)
    smooth.geom_solimp[:, 0] = 0.0
    return smooth


def substeps_for(frame_dt: float, physics_hz: float = DEFAULT_PHYSICS_HZ) -> tuple[int, float]:
    """Integer physics substeps per mocap frame and the physics timestep (s)
    that makes them fit the frame exactly. A rate that is not a positive
    number, or below half the frame rate (no whole physics step per frame),
    is a ValueError saying the lowest rate allowed."""
    ok = isinstance(physics_hz, (int, float)) and not isinstance(physics_hz, bool)
    if not (ok and math.isfinite(physics_hz) and physics_hz > 0):
        raise ValueError(f"physics rate {physics_hz!r} Hz is not a positive number")
    if not (math.isfinite(frame_dt) and frame_dt > 0):
        raise ValueError(f"frame duration {frame_dt!r} s is not a positive number")
    n = int(round(frame_dt * physics_hz))
    if n < 1:
        raise ValueError(f"physics rate {physics_hz:g} Hz gives no whole physics step per {frame_dt:.6g} s frame "
                         f"(frame rate {1 / frame_dt:.6g} Hz); use at least {0.5 / frame_dt:.6g} Hz "
                         f"(600 Hz is the default)")
    return n, frame_dt / n


@dataclass(frozen=True)
class Layout:
    """Index maps between the model's qpos/qvel/ctrl and named joints.

    qpos_adr[j], dof_adr[j]: start of joint j (in JOINTS order) in qpos/qvel.
    actuator_names: the 28 motors in ctrl order.
    torque_limit: (nu,) N m per actuator (= gear magnitude).
    kp, kd: (nu,) PD gains per actuator.
    actuator_dof: (nu,) qvel index each motor drives.
    """
    qpos_adr: tuple
    dof_adr: tuple
    actuator_names: tuple
    torque_limit: np.ndarray
    kp: np.ndarray
    kd: np.ndarray
    actuator_dof: np.ndarray
    body_ids: dict


def layout(model: mujoco.MjModel) -> Layout:
    """Index maps of `model` (cached on the model's structure: every compiled
    humanoid shares one Layout, whatever its timestep)."""
    key = (bytes(model.names), model.jnt_qposadr.tobytes(), model.actuator_trnid.tobytes(),
           model.actuator_gear.tobytes())
    return _layout_cached(key, model)


_LAYOUTS: dict = {}


def _layout_cached(key, model) -> Layout:
    if key not in _LAYOUTS:
        _LAYOUTS[key] = _build_layout(model)
    return _LAYOUTS[key]


def _build_layout(model: mujoco.MjModel) -> Layout:
    qpos_adr, dof_adr = [], []
    for name in JOINTS:
        jid = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, name)
        qpos_adr.append(int(model.jnt_qposadr[jid]))
        dof_adr.append(int(model.jnt_dofadr[jid]))
    names, lim, kp, kd, adof = [], [], [], [], []
    for a in range(model.nu):
        name = mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_ACTUATOR, a)
        joint = name if name in HINGE_JOINTS else name.rsplit("_", 1)[0]
        jid = int(model.actuator_trnid[a, 0])
        axis = int(np.argmax(np.abs(model.actuator_gear[a, :3]))) if joint not in HINGE_JOINTS else 0
        names.append(name)
        lim.append(TORQUE_LIMIT_NM[joint])
        kp.append(KP[joint])
        kd.append(KD[joint])
        adof.append(int(model.jnt_dofadr[jid]) + axis)
    bodies = {n: mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, n)
              for n in ("root",) + JOINTS + ("right_wrist", "left_wrist")}
    arrays = [np.array(a) for a in (lim, kp, kd, adof)]
    for a in arrays:
        a.flags.writeable = False  # shared by every caller through the cache
    return Layout(tuple(qpos_adr), tuple(dof_adr), tuple(names), *arrays, bodies)


def model_sha256(timestep: float) -> str:
    import hashlib
    return hashlib.sha256(humanoid_xml(timestep).encode()).hexdigest()
