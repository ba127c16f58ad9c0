# Container image for Kubeflow Pipelines: the TFX 1.16 image plus this project, with the s3 extra
# (tensorflow-io for s3:// in TensorFlow and TFX fileio, apache-beam[aws] for Beam), so that an
# s3:// pipeline root (MinIO on open-source Kubeflow) works as well as gs://.
FROM gcr.io/tfx-oss-public/tfx:1.16.0
ENV TF_USE_LEGACY_KERAS=1
WORKDIR /pipeline
COPY . /pipeline
RUN pip install --no-cache-dir --constraint constraints.txt '/pipeline[s3]'
