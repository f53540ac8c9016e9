"""Face analysis on this machine: MediaPipe's face detector and 478-point mesh, run by torch.

tflite_reader.py reads Google's .tflite files and torch_graph.py turns them into torch modules
(models.py checks and loads the shipped files); detector.py and roi.py are MediaPipe's pre- and
post-processing; analysis.py is `FaceAnalyzer` / `load_analyzer` (detect, mesh, track over frames,
with smoothing.py's One Euro filter); face.py is `Face`; topology.py names the landmark sets;
regions.py rasterises soft region masks (`region_mask`).
"""
