"""Dataclasses and enums shared by services and storage (design.md §3)."""

from winmdm.domain.models import (
    NewEnrollment,
    NewHost,
    CertificateStatus,
    DeviceCertificate,
    Enrollment,
    EnrollmentType,
    Host,
    MDMStatus,
    TokenKind,
)

__all__ = [
    "NewEnrollment",
    "NewHost",
    "CertificateStatus",
    "DeviceCertificate",
    "Enrollment",
    "EnrollmentType",
    "Host",
    "MDMStatus",
    "TokenKind",
]
