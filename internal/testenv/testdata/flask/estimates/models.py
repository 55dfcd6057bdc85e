"""The estimate's tables (schema.sql): users, their work items, the
analysis lines (cost components) of each item, and logins per day."""

from flask_login import UserMixin
from sqlalchemy import Boolean, Column, Date, DateTime, ForeignKey, Integer, Numeric, String
from sqlalchemy.orm import declarative_base

Base = declarative_base()


class User(UserMixin, Base):
    __tablename__ = "users"
    id = Column(Integer, primary_key=True)
    username = Column(String(150), nullable=False, unique=True)
    email = Column(String(254), nullable=False)
    password_hash = Column(String(255), nullable=False)
    active = Column(Boolean, nullable=False, default=True)

    @property
    def is_active(self):
        return self.active


class WorkItem(Base):
    __tablename__ = "work_items"
    STATUSES = {"draft": "Draft", "review": "In review", "final": "Final"}
    id = Column(Integer, primary_key=True)
    owner_id = Column(Integer, ForeignKey("users.id"), nullable=False)
    code = Column(String(20), nullable=False)
    title = Column(String(200), nullable=False)
    unit = Column(String(10), nullable=False)
    volume = Column(Numeric(12, 2), nullable=False)
    unit_price = Column(Numeric(14, 2), nullable=False)
    status = Column(String(10), nullable=False)
    updated_at = Column(DateTime(timezone=True), nullable=False)


class Analysis(Base):
    __tablename__ = "analysis"
    id = Column(Integer, primary_key=True)
    work_item_id = Column(Integer, ForeignKey("work_items.id"), nullable=False)
    kind = Column(String(10), nullable=False)
    component = Column(String(100), nullable=False)
    coefficient = Column(Numeric(10, 4), nullable=False)
    price = Column(Numeric(14, 2), nullable=False)


class LoginCounter(Base):
    __tablename__ = "login_counter"
    day = Column(Date, primary_key=True)
    attempts = Column(Integer, nullable=False, default=0)
