"""ppnas: hardware-aware neural architecture search on PaddlePaddle."""

from setuptools import find_packages, setup

# Runtime pins: the set in constraints.txt was resolved together on paddle 2.6.2 (see README, "Install").
# GPU users replace paddlepaddle with paddlepaddle-gpu==2.6.2; nothing else changes.
INSTALL_REQUIRES = [
    "paddlepaddle==2.6.2",
    "paddleslim==2.6.0",
    "paddledet==2.5.0",
    "paddleseg==2.7.0",
    "numpy<2",
    "pandas<3",
    "opencv-python==4.6.0.66",
    "pyyaml>=6",
    "tqdm>=4.60",
    "visualdl>=2.5",
    "matplotlib>=3.7",
    # the device-front search's samplers (NSGA-II, TPE, random) and the storage its workers share
    "optuna==5.1.0",
]

setup(
    name="ppnas",
    version="0.1.0",
    description="PaddlePaddle-native hardware-aware NAS for BlazeFace and DeepLabV3+",
    python_requires=">=3.9",
    packages=find_packages(include=["ppnas", "ppnas.*", "search_space", "search_space.*", "latency", "latency.*"]),
    install_requires=INSTALL_REQUIRES,
    extras_require={
        "dev": ["pytest>=7", "ruff>=0.5"],
        # tools/export_model.py --onnx: paddle2onnx 1.3.1 converts paddle 2.6.2's inference models;
        # onnxruntime 1.32.0 runs the check and installs beside numpy<2 (pinned in constraints.txt)
        "onnx": ["paddle2onnx==1.3.1", "onnxruntime==1.32.0"],
        # latency tables timed with MNN and tools/export_model.py --mnn (converted from ONNX: needs the onnx extra)
        "mnn": ["MNN==3.6.1"],
    },
)
