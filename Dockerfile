# Container image for Kubeflow Pipelines: the TFX 1.16 image plus this project.
FROM gcr.io/tfx-oss-public/tfx:1.16.0
ENV TF_USE_LEGACY_KERAS=1
WORKDIR /pipeline
COPY . /pipeline
RUN pip install --no-cache-dir --constraint constraints.txt /pipeline
