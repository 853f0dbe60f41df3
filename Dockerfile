FROM python:3.11-slim
WORKDIR /app
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
COPY pyproject.toml README.md alembic.ini ./
COPY dispatcher ./dispatcher
COPY campaigns ./campaigns
COPY migrations ./migrations
# Editable, so that `dispatcher db upgrade` finds migrations/ beside the packages.
RUN pip install -e .
USER nobody
ENTRYPOINT ["dispatcher"]
