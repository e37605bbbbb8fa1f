"""underwater_detection: temporal refinement detection (DRNet / TRNet / TDRNet) for underwater ROVs.

Layers (imports point downward only): ``ros`` -> ``bags`` -> ``engine`` -> ``data`` / ``models`` -> ``ops``.
Everything below ``ros`` is plain Python + PyTorch and never imports rclpy or ROS message packages.
"""

__version__ = "0.1.0"
