"""Exact namespace and URI strings of MS-MDE2, MS-XCEP and MS-WSTEP (protocol.md §0)."""

SOAP12 = "http://www.w3.org/2003/05/soap-envelope"
SOAP11 = "http://schemas.xmlsoap.org/soap/envelope/"
ADDRESSING = "http://www.w3.org/2005/08/addressing"
WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
WSU = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"
WST = "http://docs.oasis-open.org/ws-sx/ws-trust/200512"
AC = "http://schemas.xmlsoap.org/ws/2006/12/authorization"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
XSD = "http://www.w3.org/2001/XMLSchema"
DIAGNOSTICS = "http://schemas.microsoft.com/2004/09/ServiceModel/Diagnostics"

# Discovery: requests come with or without the trailing slash; responses use none.
DISCOVERY = "http://schemas.microsoft.com/windows/management/2012/01/enrollment"
XCEP = "http://schemas.microsoft.com/windows/pki/2009/01/enrollmentpolicy"
ENROLLMENT = "http://schemas.microsoft.com/windows/pki/2009/01/enrollment"

ACTION_DISCOVER = DISCOVERY + "/IDiscoveryService/Discover"
ACTION_DISCOVER_RESPONSE = DISCOVERY + "/IDiscoveryService/DiscoverResponse"
ACTION_GET_POLICIES = XCEP + "/IPolicy/GetPolicies"
ACTION_GET_POLICIES_RESPONSE = XCEP + "/IPolicy/GetPoliciesResponse"
ACTION_RST = ENROLLMENT + "/RST/wstep"
ACTION_RSTRC = ENROLLMENT + "/RSTRC/wstep"

TOKEN_TYPE_DEVICE_ENROLLMENT = (
    "http://schemas.microsoft.com/5.0.0.0/ConfigurationManager/Enrollment/DeviceEnrollmentToken"
)
REQUEST_TYPE_ISSUE = WST + "/Issue"
REQUEST_TYPE_RENEW = WST + "/Renew"
VALUE_TYPE_PKCS10 = ENROLLMENT + "#PKCS10"
VALUE_TYPES_PKCS7 = (WSSE + "#PKCS7", ENROLLMENT + "#PKCS7")
ENCODING_BASE64 = WSSE + "#base64binary"
VALUE_TYPE_USER_TOKEN = (
    "http://schemas.microsoft.com/5.0.0.0/ConfigurationManager/Enrollment/DeviceEnrollmentUserToken"
)
VALUE_TYPE_JWT = "urn:ietf:params:oauth:token-type:jwt"
VALUE_TYPE_X509 = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-x509-token-profile-1.0#X509v3"
VALUE_TYPE_PROVISION_DOC = (
    "http://schemas.microsoft.com/5.0.0.0/ConfigurationManager/Enrollment/DeviceEnrollmentProvisionDoc"
)
PASSWORD_TEXT = (
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0#PasswordText"
)
ANONYMOUS = ADDRESSING + "/anonymous"
