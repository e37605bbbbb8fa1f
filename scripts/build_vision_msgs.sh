#!/usr/bin/env bash
# Build vision_msgs (C, C++ and Python type support) from third_party/vision_msgs into the venv prefix.
#
# Why: vision_msgs is not on PyPI, but the pip `ros-kilted-*` wheels carry everything rosidl needs to generate
# it. Installing into the venv prefix (lib/, share/, site-packages) puts the libraries where the wheels'
# `.pth` bootstrapper already points LD_LIBRARY_PATH, so `import vision_msgs` needs no environment at run time.
# On a vehicle with ROS 2 from apt none of this runs: the system's vision_msgs is used.
#
# Idempotent: a stamp keyed on a hash of the .msg files, CMakeLists.txt, package.xml and this script skips the
# build when nothing changed and the package still imports. Usage: VENV=.venv bash scripts/build_vision_msgs.sh
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${VENV:-.venv}
VENV=$(cd "$VENV" && pwd)
SRC="$ROOT/third_party/vision_msgs"
PY="$VENV/bin/python"
STAMP="$VENV/share/vision_msgs/.uwdet-build-stamp"

inputs_hash() {
  (cd "$ROOT" && cat third_party/vision_msgs/msg/*.msg third_party/vision_msgs/CMakeLists.txt \
    third_party/vision_msgs/package.xml scripts/build_vision_msgs.sh) | sha256sum | cut -d' ' -f1
}

imports_ok() {
  "$PY" -c 'from vision_msgs.msg import Detection2DArray, LabelInfo; Detection2DArray(); LabelInfo()' >/dev/null 2>&1
}

HASH=$(inputs_hash)
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$HASH" ] && imports_ok; then
  exit 0
fi

# --- build tools: system cmake + a C/C++ compiler + make, Python headers for the Python type support ------------
missing=()
command -v cmake >/dev/null || missing+=(cmake)
command -v gcc >/dev/null || missing+=(gcc)
command -v g++ >/dev/null || missing+=(g++)
command -v make >/dev/null || missing+=(make)
PY_INCLUDE=$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
PY_MM=$("$PY" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
[ -f "$PY_INCLUDE/Python.h" ] || missing+=("python${PY_MM}-dev")
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "build_vision_msgs: installing ${missing[*]} with apt-get" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "error: building vision_msgs needs ${missing[*]}. Install them (e.g. sudo apt-get install ${missing[*]})" \
      "and run 'make setup' again." >&2
    exit 1
  fi
fi

for tool in ament_cmake rosidl_default_generators std_msgs geometry_msgs; do
  if [ ! -d "$VENV/share/$tool/cmake" ]; then
    echo "error: $VENV/share/$tool/cmake is missing: install requirements-ros.txt into the venv first" \
      "(scripts/setup_venv.sh does)." >&2
    exit 1
  fi
done

BUILD=$(mktemp -d "${TMPDIR:-/tmp}/uwdet-vision-msgs.XXXXXX")
trap 'rm -rf "$BUILD"' EXIT

# The wheels' exported CMake targets name include directories of the machine that built them
# (/opt/python/cpXY-cpXY/...). CMake refuses imported targets with missing include paths, so drop those at the
# end of configuration (DEFER: after every find_package has created its targets, before generation reads them).
# The real Python and NumPy include directories come from FindPython3 in rosidl_generator_py.
cat >"$BUILD/filter_foreign_includes.cmake" <<'EOF'
function(uwdet_filter_foreign_includes)
  get_property(targets DIRECTORY "${CMAKE_SOURCE_DIR}" PROPERTY IMPORTED_TARGETS)
  foreach(target IN LISTS targets)
    get_target_property(dirs ${target} INTERFACE_INCLUDE_DIRECTORIES)
    if(dirs)
      list(FILTER dirs EXCLUDE REGEX "^/opt/python/")
      set_target_properties(${target} PROPERTIES INTERFACE_INCLUDE_DIRECTORIES "${dirs}")
    endif()
  endforeach()
endfunction()
cmake_language(DEFER DIRECTORY "${CMAKE_SOURCE_DIR}" CALL uwdet_filter_foreign_includes)
EOF

NUMPY_INCLUDE=$("$PY" -c 'import numpy; print(numpy.get_include())')
export AMENT_PREFIX_PATH="$VENV" CMAKE_PREFIX_PATH="$VENV" PATH="$VENV/bin:$PATH"
start=$(date +%s)
cmake -S "$SRC" -B "$BUILD/build" -G "Unix Makefiles" \
  -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_INSTALL_PREFIX="$VENV" \
  -DCMAKE_PROJECT_INCLUDE="$BUILD/filter_foreign_includes.cmake" \
  -DBUILD_TESTING=OFF \
  -DPython3_EXECUTABLE="$PY" \
  -DPython3_FIND_VIRTUALENV=ONLY \
  -DPython3_NumPy_INCLUDE_DIR="$NUMPY_INCLUDE" \
  >"$BUILD/configure.log" 2>&1 || { cat "$BUILD/configure.log" >&2; echo "error: vision_msgs cmake configure failed" >&2; exit 1; }
cmake --build "$BUILD/build" -j "$(nproc)" >"$BUILD/build.log" 2>&1 \
  || { tail -60 "$BUILD/build.log" >&2; echo "error: vision_msgs build failed" >&2; exit 1; }
cmake --install "$BUILD/build" >"$BUILD/install.log" 2>&1 \
  || { tail -30 "$BUILD/install.log" >&2; echo "error: vision_msgs install failed" >&2; exit 1; }

if ! imports_ok; then
  "$PY" -c 'from vision_msgs.msg import Detection2DArray' >&2 || true
  echo "error: vision_msgs was built and installed into $VENV but does not import (see above)" >&2
  exit 1
fi
echo "$HASH" >"$STAMP"
echo "vision_msgs built into $VENV in $(($(date +%s) - start)) s"
