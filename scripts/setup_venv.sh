#!/usr/bin/env bash
# Create/refresh the project virtual environment. Safe to run repeatedly.
set -euo pipefail
PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}

if ! "$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)'; then
  echo "error: $PYTHON is $("$PYTHON" --version 2>&1); underwater_detection needs Python 3.10 or newer." >&2
  exit 1
fi

if [ ! -x "$VENV/bin/python" ]; then
  if ! "$PYTHON" -m venv "$VENV" 2>/dev/null; then
    rm -rf "$VENV"
    echo "python venv module missing; trying to install it with apt-get" >&2
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null
    else
      echo "error: cannot create a venv. Install python3-venv (sudo apt-get install python3-venv) and retry." >&2
      exit 1
    fi
    "$PYTHON" -m venv "$VENV"
  fi
fi

PIP=("$VENV/bin/python" -m pip --disable-pip-version-check)
# torch first and pinned: any unpinned spec would pull a multi-GB CUDA build.
# TORCH_INDEX_URL (optional) points pip at another index for that wheel, e.g. PyTorch's CPU-only index on a
# machine where the default would pull a CUDA build.
if ! "$VENV/bin/python" -c "import torch, sys; sys.exit(0 if torch.__version__.split('+')[0] == '${TORCH_SPEC#torch==}' else 1)" 2>/dev/null; then
  "${PIP[@]}" install -q ${TORCH_INDEX_URL:+--extra-index-url "$TORCH_INDEX_URL"} "$TORCH_SPEC"
fi
"${PIP[@]}" install -q -r requirements.txt
# ROS 2 Kilted from pip (rclpy, message packages, Fast DDS) and vision_msgs built from third_party/ into the venv.
# UWDET_NO_ROS=1 skips both (a laptop or training server that never runs the node).
if [ "${UWDET_NO_ROS:-0}" != 1 ]; then
  "${PIP[@]}" install -q -r requirements-ros.txt
  VENV="$VENV" bash scripts/build_vision_msgs.sh
fi
"${PIP[@]}" install -q --no-deps --no-build-isolation -e .
echo "venv ready: $VENV ($("$VENV/bin/python" -c 'import torch; print("torch", torch.__version__)')$(
  [ "${UWDET_NO_ROS:-0}" = 1 ] || "$VENV/bin/python" -c 'import rclpy, vision_msgs; print(", ROS 2 Kilted rclpy + vision_msgs")'))"
