"""The fake HubSpot portal's starting data: a French association's contacts, donations pipeline and membership object.

Kept apart from :mod:`hubspot_fake` (the API) so each reads on its own.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

DONATIONS_PIPELINE = "34117412"
RECEIVED, PLEDGED = "101010201", "101010202"
MEMBERSHIPS = "2-3444025"  # a custom object type id, as HubSpot numbers them
BOOL_OPTIONS = [{"label": "Yes", "value": "true", "displayOrder": 0, "hidden": False},
                {"label": "No", "value": "false", "displayOrder": 1, "hidden": False}]


def stamp(text: str) -> str:
    """HubSpot's timestamp format (UTC, milliseconds, ``Z``)."""
    value = dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def prop_def(name: str, label: str, type_: str, field_type: str, group: str, *, read_only: bool = False,
             options: list[dict[str, Any]] | None = None, description: str = "") -> dict[str, Any]:
    """A property definition as ``/crm/v3/properties`` returns it."""
    return {"name": name, "label": label, "type": type_, "fieldType": field_type, "groupName": group,
            "description": description, "options": options or [], "displayOrder": -1, "calculated": False,
            "externalOptions": False, "hasUniqueValue": False, "hidden": False, "formField": False,
            "archived": False, "createdAt": "2023-09-01T10:00:00.000Z", "updatedAt": "2023-09-01T10:00:00.000Z",
            "modificationMetadata": {"archivable": not read_only, "readOnlyDefinition": read_only,
                                     "readOnlyValue": read_only}}


def seed_portal(fake: Any, *, consent_property: bool = True) -> None:
    """Contacts (the consent checkbox unless ``consent_property`` is False), donation deals, memberships."""
    seed_contacts(fake, consent_property=consent_property)
    seed_deals(fake)
    seed_memberships(fake)


def seed_contacts(fake: Any, *, consent_property: bool) -> None:
    """Property groups, contact properties and five contacts (one objecting to profiling)."""
    info = "contactinformation"
    fake.groups["contacts"] = {info: {"name": info, "label": "Contact information", "displayOrder": -1,
                                      "archived": False}}
    fake.groups["deals"] = {"dealinformation": {"name": "dealinformation", "label": "Deal information",
                                                "displayOrder": -1, "archived": False}}
    fake.groups[MEMBERSHIPS] = {"adhesion_information": {"name": "adhesion_information", "label": "Adhésion",
                                                         "displayOrder": -1, "archived": False}}
    contact_props = [prop_def("firstname", "First Name", "string", "text", info),
                     prop_def("lastname", "Last Name", "string", "text", info),
                     prop_def("email", "Email", "string", "text", info),
                     prop_def("phone", "Phone Number", "string", "phonenumber", info),
                     prop_def("zip", "Postal Code", "string", "text", info),
                     prop_def("city", "City", "string", "text", info),
                     prop_def("date_of_birth", "Date of birth", "string", "text", info),
                     prop_def("createdate", "Create Date", "datetime", "date", info, read_only=True),
                     prop_def("lastmodifieddate", "Last Modified Date", "datetime", "date", info, read_only=True),
                     prop_def("hs_lastmodifieddate", "Object last modified date/time", "datetime", "date", info,
                              read_only=True),
                     prop_def("hs_object_id", "Record ID", "number", "number", info, read_only=True)]
    if consent_property:
        contact_props.append(prop_def("assoc_ai_do_not_profile", "Ne pas profiler", "bool", "booleancheckbox",
                                      info, options=BOOL_OPTIONS))
    fake.properties["contacts"] = {p["name"]: p for p in contact_props}
    people = [("101", "Camille", "Martin", "camille.martin@example.org", "75011", "Paris", "1961-02-03", False,
               "2024-01-05T10:00:00"),
              ("102", "Louis", "Bernard", "louis.bernard@example.net", "93100", "Montreuil", "1990-07-14", False,
               "2024-01-06T10:00:00"),
              ("103", "Inès", "Dubois", "ines.dubois@example.com", "75020", "Paris", "", True,
               "2024-01-06T10:00:00"),
              ("104", "Hugo", "Thomas", "hugo.thomas@example.org", "94300", "Vincennes", "1975-11-30", False,
               "2024-02-01T09:00:00"),
              ("105", "Chloé", "Petit", "chloe.petit@example.fr", "69003", "Lyon", "", False,
               "2024-02-01T09:00:00")]
    for cid, first, last, email, zip_code, city, born, dnp, modified in people:
        props = {"firstname": first, "lastname": last, "email": email, "phone": None, "zip": zip_code,
                 "city": city, "date_of_birth": born or None, "createdate": stamp("2023-09-01T10:00:00"),
                 "lastmodifieddate": stamp(modified), "hs_lastmodifieddate": stamp(modified), "hs_object_id": cid}
        if consent_property:
            props["assoc_ai_do_not_profile"] = "true" if dnp else None
        fake.objects.setdefault("contacts", {})[cid] = {"id": cid, "properties": props}


def seed_deals(fake: Any) -> None:
    """Deal properties, six deals (gifts of the donations pipeline and others) and their contacts."""
    fake.properties["deals"] = {p["name"]: p for p in [
        prop_def("dealname", "Deal Name", "string", "text", "dealinformation"),
        prop_def("amount", "Amount", "number", "number", "dealinformation"),
        prop_def("closedate", "Close Date", "datetime", "date", "dealinformation"),
        prop_def("pipeline", "Pipeline", "enumeration", "select", "dealinformation"),
        prop_def("dealstage", "Deal Stage", "enumeration", "radio", "dealinformation"),
        prop_def("deal_currency_code", "Currency", "enumeration", "select", "dealinformation"),
        prop_def("campagne", "Campagne", "string", "text", "dealinformation"),
        prop_def("don_mensuel", "Don mensuel", "bool", "booleancheckbox", "dealinformation", options=BOOL_OPTIONS),
        prop_def("hs_lastmodifieddate", "Last Modified Date", "datetime", "date", "dealinformation",
                 read_only=True)]}
    deals = [("9001", "Don Camille", "50", "2024-01-06T11:00:00", DONATIONS_PIPELINE, RECEIVED, "Printemps 2024",
              None, "2024-01-06T11:00:00"),
             ("9002", "Don Louis", "30", "2024-01-07T12:00:00", DONATIONS_PIPELINE, RECEIVED, None, None,
              "2024-01-07T12:00:00"),
             ("9003", "Promesse Hugo", "100", "2024-02-03T09:00:00", DONATIONS_PIPELINE, PLEDGED, None, None,
              "2024-02-03T09:00:00"),
             ("9004", "Mécénat Bernard SARL", "5000", "2024-01-15T09:00:00", "default", "closedwon", None, None,
              "2024-01-15T09:00:00"),
             ("9005", "Don mensuel Hugo", "15", "2024-02-05T09:00:00", DONATIONS_PIPELINE, RECEIVED, None,
              "true", "2024-02-05T09:00:00"),
             ("9006", "Don anonyme", "20", "2024-02-06T09:00:00", DONATIONS_PIPELINE, RECEIVED, None, None,
              "2024-02-06T09:00:00")]
    for did, name, amount, close, pipeline, stage, campaign, monthly, modified in deals:
        fake.objects.setdefault("deals", {})[did] = {"id": did, "properties": {
            "dealname": name, "amount": amount, "closedate": stamp(close), "pipeline": pipeline, "dealstage": stage,
            "deal_currency_code": "EUR", "campagne": campaign, "don_mensuel": monthly,
            "createdate": stamp(close), "hs_lastmodifieddate": stamp(modified), "hs_object_id": did}}
    # deal 9002 is linked to Louis and, with the "Donateur" label, to Chloé who gave through his account
    fake.associations[("deals", "contacts")] = {
        "9001": [("101", None)], "9002": [("102", None), ("105", "Donateur")], "9003": [("104", None)],
        "9004": [("102", None)], "9005": [("104", None)]}


def seed_memberships(fake: Any) -> None:
    """The membership custom object: properties, two memberships, their members."""
    fake.properties[MEMBERSHIPS] = {p["name"]: p for p in [
        prop_def("saison", "Saison", "string", "text", "adhesion_information"),
        prop_def("cotisation", "Cotisation", "number", "number", "adhesion_information"),
        prop_def("date_debut", "Début", "date", "date", "adhesion_information"),
        prop_def("date_fin", "Fin", "date", "date", "adhesion_information"),
        prop_def("statut", "Statut", "string", "text", "adhesion_information"),
        prop_def("hs_lastmodifieddate", "Last Modified Date", "datetime", "date", "adhesion_information",
                 read_only=True)]}
    for mid, season, fee, start, end, status, modified in [
            ("7001", "2024", "25", "2024-01-01", "2024-12-31", "Payée", "2024-01-02T09:00:00"),
            ("7002", "2023-2024", "20", "2023-09-01", "2024-08-31", "Payée", "2023-09-02T09:00:00")]:
        fake.objects.setdefault(MEMBERSHIPS, {})[mid] = {"id": mid, "properties": {
            "saison": season, "cotisation": fee, "date_debut": start, "date_fin": end, "statut": status,
            "createdate": stamp(modified), "hs_lastmodifieddate": stamp(modified), "hs_object_id": mid}}
    fake.associations[(MEMBERSHIPS, "contacts")] = {"7001": [("102", "Adhérent")], "7002": [("101", "Adhérent")]}
