"""winmdm: a Windows device-management server (MS-MDE2 enrollment, MS-MDM OMA-DM management)."""

__version__ = "0.1.0"
