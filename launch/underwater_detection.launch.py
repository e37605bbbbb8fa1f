"""Detector + grasp-target nodes.

    ros2 launch underwater_detection underwater_detection.launch.py model:=/path/tdrnet_lite_tcb_480_videos.pt \
        image_topic:=/rov/camera/image_raw camera_info_topic:=/rov/camera/camera_info compressed:=false k:=4 \
        e:=1.0 namespace:=rov use_sim_time:=false

Arguments (the same names and defaults as ``uwdet run``, which starts the same nodes where ``launch`` is not
installed, e.g. a pip-only ROS): model, image_topic, camera_info_topic (the grasp-target node's CameraInfo),
compressed, k, e, input_size (network input HxW, height first; empty = the checkpoint's trained size), namespace,
use_sim_time, params_file (detector parameters, default
share/underwater_detection/config/detector.yaml) and grasp_params_file (default
share/underwater_detection/config/grasp_target.yaml). Launch arguments override the parameter files' values.

The detector is a lifecycle node that configures and activates itself (``autostart: true`` in detector.yaml);
set autostart to false there to drive its transitions from a lifecycle manager instead.
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution, PythonExpression
from launch_ros.actions import Node
from launch_ros.descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare

PACKAGE = "underwater_detection"


def generate_launch_description() -> LaunchDescription:
    share = FindPackageShare(PACKAGE)
    arguments = [
        DeclareLaunchArgument("model", default_value="models/tdrnet_lite_tcb_480_videos.pt",
                              description="checkpoint file for the detector"),
        DeclareLaunchArgument("image_topic", default_value="/camera/image_raw",
                              description="camera topic (with compressed:=true, <image_topic>/compressed)"),
        DeclareLaunchArgument("camera_info_topic", default_value="/camera/camera_info",
                              description="the camera's sensor_msgs/CameraInfo (grasp-target bearing)"),
        DeclareLaunchArgument("compressed", default_value="false",
                              description="subscribe to sensor_msgs/CompressedImage instead of sensor_msgs/Image"),
        DeclareLaunchArgument("k", default_value="4", description="key-frame interval"),
        DeclareLaunchArgument("e", default_value="1.0", description="soft refinement coefficient"),
        DeclareLaunchArgument("input_size", default_value="",
                              description="network input HxW, height first (e.g. 320x448); empty = the checkpoint's "
                                          "trained size"),
        DeclareLaunchArgument("namespace", default_value="", description="namespace of both nodes"),
        DeclareLaunchArgument("use_sim_time", default_value="false",
                              description="use /clock (e.g. from uwdet bag-play --clock)"),
        DeclareLaunchArgument("params_file", default_value=PathJoinSubstitution([share, "config", "detector.yaml"]),
                              description="detector parameter file"),
        DeclareLaunchArgument("grasp_params_file",
                              default_value=PathJoinSubstitution([share, "config", "grasp_target.yaml"]),
                              description="grasp-target parameter file"),
    ]
    use_sim_time = ParameterValue(LaunchConfiguration("use_sim_time"), value_type=bool)
    image_transport = PythonExpression(
        ["'compressed' if '", LaunchConfiguration("compressed"), "'.lower() in ('true', '1', 'yes') else 'raw'"])
    detector = Node(
        package=PACKAGE,
        executable="detector_node",
        name="detector_node",
        namespace=LaunchConfiguration("namespace"),
        output="screen",
        emulate_tty=True,
        parameters=[
            LaunchConfiguration("params_file"),
            {
                "model_path": LaunchConfiguration("model"),
                "image_topic": LaunchConfiguration("image_topic"),
                "image_transport": image_transport,
                "key_interval": ParameterValue(LaunchConfiguration("k"), value_type=int),
                "soft_coefficient": ParameterValue(LaunchConfiguration("e"), value_type=float),
                # value_type=str: "" stays the empty string (untyped, launch would read it as YAML null)
                "input_size": ParameterValue(LaunchConfiguration("input_size"), value_type=str),
                "use_sim_time": use_sim_time,
            },
        ],
    )
    grasp = Node(
        package=PACKAGE,
        executable="grasp_target_node",
        name="grasp_target_node",
        namespace=LaunchConfiguration("namespace"),
        output="screen",
        emulate_tty=True,
        parameters=[
            LaunchConfiguration("grasp_params_file"),
            {"camera_info_topic": LaunchConfiguration("camera_info_topic"), "use_sim_time": use_sim_time},
        ],
    )
    return LaunchDescription([*arguments, detector, grasp])
