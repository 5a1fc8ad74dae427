"""Dataclasses and enums shared by services and storage (design.md §3)."""

from winmdm.domain.models import (
    CertificateStatus,
    DeviceCertificate,
    Enrollment,
    EnrollmentType,
    Host,
    MDMStatus,
    NewEnrollment,
    NewHost,
    TokenKind,
)

__all__ = [
    "CertificateStatus",
    "DeviceCertificate",
    "Enrollment",
    "EnrollmentType",
    "Host",
    "MDMStatus",
    "NewEnrollment",
    "NewHost",
    "TokenKind",
]
