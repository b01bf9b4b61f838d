# One image for every Parley service; docker-compose.yml picks the service with `parley serve <name>`.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml ./
COPY gen ./gen
COPY services ./services
COPY gateway ./gateway
RUN pip install --no-cache-dir .
ENV PARLEY_HOST=0.0.0.0
ENTRYPOINT ["parley"]
