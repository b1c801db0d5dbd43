# One image for every Python service of docker-compose.yml: JupyterLab, the Voilà dashboard,
# workers and the HTTP API. The package is installed in editable mode so that the notebooks and
# the dashboard notebook stay next to the code that reads them from /app.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY . /app
RUN pip install -e ".[lab,api]"

# Run as an unprivileged user that owns the notebooks, so JupyterLab can save them.
RUN useradd --create-home --uid 1000 taskq && chown -R taskq:taskq /app
USER taskq

EXPOSE 8888 8866 8080
CMD ["taskq", "--help"]
