"""Password hashers of the project.

PBKDF2SHA256OneMillion is the work factor a security review asked for, done
the way Django's documentation shows ("Increasing the work factor"): a
subclass of PBKDF2PasswordHasher with more iterations, listed first in
PASSWORD_HASHERS. It keeps the algorithm name, so stored hashes read
pbkdf2_sha256$1000000$...
"""
from django.contrib.auth.hashers import PBKDF2PasswordHasher


class PBKDF2SHA256OneMillion(PBKDF2PasswordHasher):
    iterations = 1_000_000
