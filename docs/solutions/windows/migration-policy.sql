-- winmdm migration policy: "MDM is on with winmdm" (osquery, Windows hosts).
--
-- An osquery policy passes when its query returns a row. This one returns a row only when
-- HKLM\SOFTWARE\Microsoft\Enrollments has an enrollment key whose ProviderID is winmdm's own
-- ("winmdm") and whose EnrollmentState is 1 (enrolled). It returns nothing, so the policy fails,
-- when MDM is off, when the PC is still enrolled in the MDM you are leaving (another ProviderID),
-- and when a winmdm enrollment is not in the enrolled state. The two values must sit in the same
-- key: hence GROUP BY key. The rule, and why it reads the registry table rather than mdm_bridge,
-- is explained in README.md beside this file; winmdm-migration-nudge.ps1 applies the same rule.
--
-- osquery's registry table: one row per value (and per subkey) of each key matched by the `key`
-- constraint; a single trailing % lists the direct subkeys of Enrollments, one per enrollment.
-- REG_DWORD data comes back as decimal text.
SELECT 1
FROM registry
WHERE key LIKE 'HKEY_LOCAL_MACHINE\SOFTWARE\Microsoft\Enrollments\%'
GROUP BY key
HAVING SUM(name = 'ProviderID' AND data = 'winmdm') > 0
   AND SUM(name = 'EnrollmentState' AND data = '1') > 0
LIMIT 1;
