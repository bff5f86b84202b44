"""Steps of `send_campaign` on Celery workers: real RabbitMQ (a vhost of their own), PostgreSQL, Redis."""
